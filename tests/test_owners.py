"""Owner-history features: names matched after normalisation, out-of-fold statistics (no patent
sees its own label), the reference book as of the valuation date."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipvalue.features import FeatureSpec, PatentFeatureBuilder
from ipvalue.features.owners import LayeredOwnerBook, check_owner_book, normalise_owner_name, owner_history, patent_fold
from ipvalue.frame import validate_patent_frame


def frame(**columns) -> pd.DataFrame:
    base = {"jurisdiction": "CN", "patent_type": "invention", "filing_date": "2015-03-01"}
    return validate_patent_frame(pd.DataFrame({**base, **columns}), strict=True).valid


@pytest.mark.parametrize("a, b", [
    ("北京某某科技有限公司（中国）", "北京某某科技有限公司(中国)"),        # 全角 / 半角 parentheses
    ("深圳甲乙电子有限责任公司", "深圳甲乙电子有限公司"),                # 有限责任公司 / 有限公司
    ("上海 丙丁 机械 有限公司", "上海丙丁机械有限公司"),                  # spaces
    ("ＡＢＣ　科技有限公司", "abc科技有限公司"),                          # full-width letters and space
    ("The Regents of the University of California", "REGENTS OF THE UNIVERSITY OF CALIFORNIA"),  # English case, leading 'the'
    ("Acme Widgets Co., Ltd.", "ACME WIDGETS COMPANY LIMITED"),
    ("Foo Corporation; Bar Inc.", "foo corp"),                             # the first owner of a list
])
def test_owner_names_match_after_normalisation(a, b):
    got = normalise_owner_name(pd.Series([a, b]))
    assert got[0] == got[1]


def test_owner_names_that_differ_stay_apart_and_blanks_are_missing():
    got = normalise_owner_name(pd.Series(["北京甲科技有限公司", "北京乙科技有限公司", "  ", None]))
    assert got[0] != got[1] and got[2:].isna().all()


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="Ａ（）()有限责任公司 theabcABC.,", min_size=1, max_size=20))
@example("(())").via("nested empty brackets: removed in one pass they left '()'")
def test_owner_name_normalisation_is_idempotent(name):
    once = normalise_owner_name(pd.Series([name]))
    assert normalise_owner_name(once).equals(once) or once.isna().all()


def owner_frame(owners, ids=None):
    n = len(owners)
    return frame(patent_id=ids or [f"CN{i}" for i in range(n)], applicants=owners, grant_date=["2016-01-01"] * n)


def test_owner_history_by_hand_for_a_patent_outside_the_book():
    book = pd.DataFrame({
        "owner": ["甲公司", "甲公司", "甲公司", "乙公司"], "patent_id": ["B1", "B2", "B3", "B4"],
        "start_date": ["2010-01-01"] * 3 + ["2012-01-01"], "lapse_date": ["2015-01-01", None, None, "2014-06-01"],
        "pledge_count": [1, 0, 0, 0],
    })
    got = owner_history(owner_frame(["甲公司 ", "丙公司"], ["X1", "X2"]), book, "2020-01-01", prior_strength=2)
    # owner 甲: 3 patents, 1 lapsed; population 2 of 4 lapsed: (1 + 2 × 0.5) / (3 + 2) = 0.4
    assert got.loc[0, "owner_portfolio_size"] == 3 and got.loc[0, "owner_lapse_share"] == pytest.approx(0.4)
    # pledged: 1 of 3, population 1 of 4: (1 + 2 × 0.25) / 5 = 0.3; licences unknown: missing
    assert got.loc[0, "owner_pledged_share"] == pytest.approx(0.3) and np.isnan(got.loc[0, "owner_licensed_share"])
    # an owner without history takes the population rate; as of 2014-12-31 only 乙's lapse counts
    assert got.loc[1, "owner_portfolio_size"] == 0 and got.loc[1, "owner_lapse_share"] == pytest.approx(0.5)
    early = owner_history(owner_frame(["甲公司"], ["X1"]), book, "2014-12-31", prior_strength=2)
    assert early.loc[0, "owner_lapse_share"] == pytest.approx((0 + 2 * 0.25) / 5)


def test_no_patent_sees_its_own_label_in_the_owner_history():
    rng = np.random.default_rng(0)
    n = 60
    ids = [f"CN{i}" for i in range(n)]
    owners = list(rng.choice(["甲公司", "乙公司", "丙大学"], n))
    patents = owner_frame(owners, ids)
    lapsed = rng.random(n) < 0.4
    book = pd.DataFrame({"owner": owners, "patent_id": ids, "start_date": "2016-01-01",
                         "lapse_date": np.where(lapsed, "2019-01-01", None)})
    before = owner_history(patents, book, "2020-01-01")
    for i in range(n):  # flip each patent's own outcome: its own features must not move
        flipped = book.assign(lapse_date=book["lapse_date"].where(book.index != i, None if lapsed[i] else "2019-01-01"))
        after = owner_history(patents.iloc[[i]], flipped, "2020-01-01")
        pd.testing.assert_frame_equal(after, before.iloc[[i]])
    # while the patents of the same owner in another fold do see it
    folds = patent_fold(book["patent_id"], 5)
    i = 0
    other = [j for j in range(n) if owners[j] == owners[i] and folds[j] != folds[i]]
    flipped = book.assign(lapse_date=book["lapse_date"].where(book.index != i, None if lapsed[i] else "2019-01-01"))
    assert not np.allclose(owner_history(patents.iloc[other], flipped, "2020-01-01")["owner_lapse_share"], before.iloc[other]["owner_lapse_share"])


def test_owner_features_come_from_the_builder_and_need_a_book():
    patents = owner_frame(["甲公司", "甲公司"], ["A1", "A2"])
    spec = FeatureSpec.load("renewal-cn-v1")
    without = PatentFeatureBuilder(spec, valuation_date="2020-01-01").fit(patents).transform(patents)
    assert without["owner_lapse_share"].isna().all()
    book = pd.DataFrame({"owner": ["甲公司"] * 3, "patent_id": ["B1", "B2", "B3"], "start_date": "2012-01-01", "lapse_date": [None, None, "2015-01-01"]})
    got = PatentFeatureBuilder(spec, valuation_date="2020-01-01", owner_book=book).fit(patents).transform(patents)
    assert got["owner_portfolio_size"].tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match=r"The owner book lacks column\(s\) \['lapse_date'\]"):
        PatentFeatureBuilder(spec, valuation_date="2020-01-01", owner_book=book.drop(columns="lapse_date")).fit(patents)


def test_at_a_valuation_a_book_patent_leaves_only_itself_out():
    book = pd.DataFrame({
        "owner": ["甲公司"] * 4 + ["乙公司"], "patent_id": ["A1", "A2", "A3", "A4", "B1"],
        "start_date": "2012-01-01", "lapse_date": ["2015-01-01", None, None, None, "2016-01-01"],
    })
    patents = owner_frame(["甲公司", "甲公司"], ["A2", "A1"])
    got = owner_history(patents, book, "2020-01-01", prior_strength=2, leave_out="self")
    # A2 sees A1, A3, A4 (1 lapsed of 3) whatever their folds; the population without A2: 2 lapsed of 4
    # (1 + 2 × 0.5) / (3 + 2) = 0.4
    assert got.loc[0, "owner_portfolio_size"] == 3 and got.loc[0, "owner_lapse_share"] == pytest.approx(0.4)
    # A1's own lapse is left out: 0 of 3, population 1 of 4: (0 + 2 × 0.25) / 5 = 0.1
    assert got.loc[1, "owner_portfolio_size"] == 3 and got.loc[1, "owner_lapse_share"] == pytest.approx(0.1)
    # a patent the book does not hold sees the whole book
    outside = owner_history(owner_frame(["甲公司"], ["A9"]), book, "2020-01-01", prior_strength=2, leave_out="self")
    assert outside.loc[0, "owner_portfolio_size"] == 4 and outside.loc[0, "owner_lapse_share"] == pytest.approx((1 + 2 * 0.4) / 6)
    with pytest.raises(ValueError, match=r"'leave_out' of owner_history must be one of \['fold', 'self'\]. Got 'none'"):
        owner_history(patents, book, "2020-01-01", leave_out="none")



def test_a_patent_the_book_holds_under_another_owner_leaves_out_only_the_population_row():
    """B1 was 乙公司's in the book and is valued as 甲公司's (transferred): 甲公司's record is not
    reduced by B1's row, but the population it is smoothed towards leaves B1 out."""
    book = pd.DataFrame({
        "owner": ["甲公司"] * 3 + ["乙公司", "丙公司"], "patent_id": ["A1", "A2", "A3", "B1", "C1"],
        "start_date": "2012-01-01", "lapse_date": ["2015-01-01", None, None, "2016-01-01", None],
    })
    got = owner_history(owner_frame(["甲公司", "丙公司"], ["B1", "C1"]), book, "2020-01-01", prior_strength=2, leave_out="self")
    # 甲公司: all three of its patents (1 lapsed); population without B1: 1 lapsed of 4 → (1 + 2 × 0.25) / (3 + 2) = 0.3
    assert got.loc[0, "owner_portfolio_size"] == 3 and got.loc[0, "owner_lapse_share"] == pytest.approx(0.3)
    # C1 is 丙公司's own: it leaves itself out (no other patent); population without C1: 2 of 4 → (0 + 2 × 0.5) / 2 = 0.5
    assert got.loc[1, "owner_portfolio_size"] == 0 and got.loc[1, "owner_lapse_share"] == pytest.approx(0.5)

def random_book(rng, ids, owners):
    n = len(ids)
    counts = rng.choice([np.nan, 0, 1, 3], size=(n, 3))
    return pd.DataFrame({
        "owner": rng.choice(owners, n), "patent_id": ids,
        "start_date": rng.choice(["2010-01-01", "2018-06-30", "2021-03-01", None], n),  # one after the date, one unknown
        "lapse_date": rng.choice(["2015-01-01", "2019-12-31", "2020-06-01", None], n),
        "pledge_count": counts[:, 0], "licence_count": counts[:, 1], "transfer_count": counts[:, 2],
    })


@pytest.mark.parametrize("seed", range(6))
def test_a_layered_book_gives_exactly_the_features_of_its_whole_table(seed):
    # a valuation sums the model's book once per date and adds its own patents' rows on top; the
    # features must equal those of the concatenated book bit for bit (whole-number counts)
    rng = np.random.default_rng(seed)
    owners = ["甲公司", "乙公司", "丙公司", "丁公司", "  ", None]
    base = check_owner_book(random_book(rng, [f"B{i}" for i in range(60)], owners))
    top_ids = [f"B{i}" for i in rng.choice(60, 5, replace=False)] + ["T1", "T2", "T3"]  # replaces base rows, adds new ones
    top = check_owner_book(random_book(rng, top_ids, owners[:3] + ["戊公司", None]))
    layered = LayeredOwnerBook(base, top)
    ids = [*top_ids[:3], "B59", "B58", "T1", "X1", "X2"]  # in the top, in the base only, in neither
    patents = owner_frame(list(rng.choice(["甲公司", "乙公司", "戊公司", "己公司", "甲公司"], len(ids))), ids)
    patents.loc[patents.index[-1], "applicants"] = None
    whole = layered.frame()
    assert len(layered) == len(whole)
    for date in ("2019-12-31", "2020-06-30"):
        got = owner_history(patents, layered, date, prior_strength=2, leave_out="self")
        pd.testing.assert_frame_equal(got, owner_history(patents, whole, date, prior_strength=2, leave_out="self"), check_exact=True)
        pd.testing.assert_frame_equal(owner_history(patents, layered, date, leave_out="fold"), owner_history(patents, whole, date, leave_out="fold"))
    empty = LayeredOwnerBook(base, top.iloc[:0])
    pd.testing.assert_frame_equal(owner_history(patents, empty, "2020-06-30", leave_out="self"),
                                  owner_history(patents, empty.frame(), "2020-06-30", leave_out="self"), check_exact=True)


def test_a_fitted_builder_re_dated_keeps_what_it_learnt():
    patents = owner_frame(["甲公司", "甲公司"], ["A1", "A2"])
    spec = FeatureSpec.load("renewal-cn-v1")
    builder = PatentFeatureBuilder(spec, valuation_date="2015-06-01").fit(patents.assign(grant_date=pd.to_datetime(["2016-01-01", "2014-01-01"])))
    late = patents.assign(grant_date=pd.to_datetime(["2016-01-01", "2014-01-01"]))
    assert builder.transform(late)["grant_lag_years"].isna().tolist() == [True, False]  # granted after 2015-06-01: not seen then
    dated = builder.at_date("2020-01-01", owner_book=pd.DataFrame({"owner": ["甲公司"] * 2, "patent_id": ["A1", "A2"], "start_date": "2014-01-01", "lapse_date": None}))
    assert dated.transform(late)["grant_lag_years"].notna().all() and dated.transform(late)["owner_portfolio_size"].tolist() == [1.0, 1.0]
    assert builder.valuation_date_ == pd.Timestamp("2015-06-01") and builder.references_ is dated.references_
    assert dated.reference_notes_[-1] == "features as of 2020-01-01 (fitted as of 2015-06-01)"
    with pytest.raises(ValueError, match=r"'valuation_date' of PatentFeatureBuilder.at_date must be one date \(YYYY-MM-DD\). Got None"):
        builder.at_date(None)
