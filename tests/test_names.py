"""One normaliser for ids and names: NFKC, invisible characters, control / bidi refused, company forms."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.frame import validate_patent_frame
from ipvalue.names import forbidden_characters, has_invisible, name_key, normalise_id, normalise_text, same_name

BORROWER = "某某科技（北京）有限公司"


@pytest.mark.parametrize(
    "other",
    ["某某科技 (北京) 有限公司", "某某科技(北京)有限公司", "某某科技（北京）有限责任公司", " 某某科技\u3000(北京)有限公司\u200b"],
)
def test_owner_name_variants_compare_equal(other):
    # issue 15 finding 6: the CNIPA form of the borrower failed "owner is borrower".
    assert same_name(BORROWER, other)
    assert name_key(other) == "某某科技(北京)有限公司"


def test_different_names_and_missing_names_do_not_match():
    assert not same_name(BORROWER, "某某科技（上海）有限公司")
    assert not same_name(None, None)
    got = same_name(pd.Series([BORROWER, None, "ACME Ltd"]), pd.Series(["某某科技 (北京) 有限公司", None, "acme  ltd"]))
    assert got.tolist() == [True, False, True]


def test_ids_fold_case_width_and_spaces():
    # issue 15 finding 5/6: CN112345678B and cn112345678b are one patent; ids written in registers too.
    assert normalise_id(pd.Series(["cn112345678b", "CN112345678B", "ＣＮ１１２３４５６７８Ｂ", "CN 112345678 B", "CN1\u200b"])).tolist() == [
        "CN112345678B",
        "CN112345678B",
        "CN112345678B",
        "CN112345678B",
        "CN1",
    ]
    assert normalise_id("  ") is None or pd.isna(normalise_id("  "))


def test_control_and_bidi_characters_are_found_invisible_ones_removed():
    s = pd.Series(["CN1\u202eB", "CN1\x00", "CN1\x1b", "CN1\u200b", "CN1\ufeff", "CN1", None])
    assert forbidden_characters(s).tolist() == [True, True, True, False, False, False, False]
    assert has_invisible(s).tolist() == [False, False, False, True, True, False, False]
    assert normalise_text("a\u200bb\u00adc\t\n d") == "abc d"


def test_validation_normalises_ids_finds_case_duplicates_and_refuses_hidden_characters():
    raw = pd.DataFrame(
        {
            "patent_id": ["CN112345678B", "cn112345678b", "CN2\u202eX", "CN3\x00", "CN4\u200b", "CN5"],
            "jurisdiction": ["CN"] * 6,
            "patent_type": ["invention"] * 6,
            "filing_date": ["2020-01-01"] * 6,
            "applicants": ["某某科技（北京）有限公司"] * 5 + ["名字\u202e反"],
        }
    )
    res = validate_patent_frame(raw)
    assert res.valid["patent_id"].tolist() == ["CN4"]
    assert res.valid["applicants"].tolist() == ["某某科技(北京)有限公司"]
    p = res.problems
    assert p.loc[p["row"].isin([1, 2]), "problem"].eq("duplicated id").all()
    assert set(p.loc[p["row"].isin([3, 4]), "column"]) == {"patent_id"}
    assert p.loc[p["row"] == 6, "column"].tolist() == ["applicants"]
    assert p.loc[p["row"] == 6, "problem"].str.contains("control or bidirectional").all()
    assert any("invisible characters" in n and "patent_id" in n for n in res.notes)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_normalisation_is_idempotent(text):
    once = normalise_text(text)
    assert once is None or pd.isna(once) or normalise_text(once) == once
    key = name_key(text)
    assert key is None or pd.isna(key) or name_key(key) == key


@pytest.mark.parametrize("fn", [forbidden_characters, has_invisible, normalise_text, normalise_id, name_key])
@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_short_series_gets_what_the_column_code_gives(fn, dtype):
    # a few names (a valuation's owners, a borrower's applications) go through the remembered
    # single texts; a long column runs the column code: the same values, dtype, index and name
    texts = [BORROWER, "某某科技 (北京) 有限责任公司", " The Acme Corporation Limited ", "\u200bcn 112345678ｂ", "a\x00b", "x\u202ey",
             "", "  ", None, float("nan"), "(())Acme", "Ｇ０６Ｆ１７／３０", "co., ltd.", 5]
    short = pd.Series(texts, dtype=dtype if dtype == object else None, index=range(100, 100 + len(texts)), name="owner")
    if dtype == "str":
        short = short.astype("str").where(short.notna())
    from ipvalue.names import SHORT_SERIES

    long = pd.concat([short] * (SHORT_SERIES // len(texts) + 1))
    assert len(short) <= SHORT_SERIES < len(long)
    pd.testing.assert_series_equal(fn(short), fn(long).iloc[: len(short)])
