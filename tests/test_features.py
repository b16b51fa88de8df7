"""Feature builders: hand-checked values, properties that must always hold, and the real data."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvalue.exceptions import SpecError
from ipvalue.features import FeatureSpec, PatentFeatureBuilder, event_counts, infer_applicant_type, normalise_ipc
from ipvalue.features.cohort import CohortReference, quantile_percentile
from ipvalue.frame import validate_patent_frame

YEAR = 365.25
pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")


def frame(**columns) -> pd.DataFrame:
    """A validated PatentFrame from a few columns (defaults: CN invention filed 2015-03-01)."""
    n = max(len(v) for v in columns.values() if isinstance(v, list))
    base = {"patent_id": [f"CN{i}" for i in range(n)], "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2015-03-01"}
    return validate_patent_frame(pd.DataFrame({**base, **columns}), strict=True).valid


def features(patents, valuation_date="2026-03-01", **kw):
    return PatentFeatureBuilder(valuation_date=valuation_date, **kw).fit(patents).build(patents).matrix


# --- remaining legal life ------------------------------------------------------------------


def test_remaining_life_cn_terms_by_type_and_design_regime():
    f = frame(
        patent_type=["invention", "utility_model", "design", "design"],
        filing_date=["2015-03-01", "2020-03-01", "2021-05-31", "2021-06-01"],
        grant_date=["2017-01-01", "2020-09-01", "2021-09-01", "2021-09-01"],
    )
    m = features(f)
    assert m["statutory_term_years"].tolist() == [20.0, 10.0, 10.0, 15.0]
    vd = pd.Timestamp("2026-03-01")
    expiry = pd.to_datetime(["2035-03-01", "2030-03-01", "2031-05-31", "2036-06-01"])
    np.testing.assert_allclose(m["remaining_life_years"], (expiry - vd).days / YEAR, rtol=1e-12)
    np.testing.assert_allclose(m["age_years"].iloc[0], (vd - pd.Timestamp("2015-03-01")).days / YEAR)


def test_us_terms_with_adjustment_and_design_from_grant():
    f = frame(
        patent_id=["US1", "US2"], jurisdiction=["US", "US"], patent_type=["invention", "design"],
        filing_date=["2010-01-01", "2016-01-01"], grant_date=["2013-01-01", "2017-02-01"], term_adjustment_days=[100, None],
    )
    m = features(f, valuation_date="2020-01-01")
    vd = pd.Timestamp("2020-01-01")
    expected = [(pd.Timestamp("2030-01-01") + pd.Timedelta(days=100) - vd).days / YEAR, (pd.Timestamp("2032-02-01") - vd).days / YEAR]
    np.testing.assert_allclose(m["remaining_life_years"], expected, rtol=1e-12)
    assert m["statutory_term_years"].tolist() == [20 + 100 / YEAR, 15.0]


def test_lapsed_expired_and_unpaid_fees_have_zero_life_and_a_flag():
    f = frame(
        legal_status=["in_force", "lapsed", "in_force", "in_force", "invalidated"],
        filing_date=["2015-03-01", "2015-03-01", "2015-03-01", "2015-03-01", "2015-03-01"],
        grant_date=["2017-01-01"] * 5,
        fees_paid_until=["2026-03-01", None, "2025-10-01", "2025-03-01", None],  # within / beyond the 183-day grace
        patent_type=["invention", "invention", "invention", "invention", "invention"],
    )
    m = features(f)
    assert m["is_lapsed"].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert (m["remaining_life_years"][m["is_lapsed"] == 1] == 0).all()
    assert (m["remaining_life_years"][m["is_lapsed"] == 0] > 8).all()
    old = features(frame(filing_date=["2000-01-01"], grant_date=["2003-01-01"]))
    assert old[["remaining_life_years", "is_expired"]].iloc[0].tolist() == [0.0, 1.0]


def test_grant_after_the_valuation_date_is_not_seen():
    m = features(frame(grant_date=["2027-01-01"]), valuation_date="2026-03-01")
    assert m["is_granted"].item() == 0.0 and np.isnan(m["grant_lag_years"].item())


# --- citations, family, claims -----------------------------------------------------------


def test_forward_citations_only_up_to_the_valuation_date_and_in_windows():
    f = frame(
        publication_date=["2016-09-01", "2016-09-01", "2016-09-01"],
        forward_citations=[4, 2, 0],
        forward_citation_dates=["2017-01-01;2019-01-01;2021-06-01;2026-05-01", None, None],
        self_citations=[1, 1, 0],
    )
    m = features(f, valuation_date="2026-03-01")
    assert m["fwd_cits"].tolist() == [3.0, 2.0, 0.0]  # the 2026-05-01 citation is after the date
    assert m["fwd_cits_3y"].iloc[0] == 2.0 and m["fwd_cits_5y"].iloc[0] == 3.0
    assert np.isnan(m["fwd_cits_5y"].iloc[1])  # cited, but no dates: window unknown
    assert m["fwd_cits_5y"].iloc[2] == 0.0  # never cited
    assert m["self_citation_share"].tolist()[:2] == [0.25, 0.5]


def test_family_offices_triadic_pct_and_market_coverage():
    f = frame(family_size=[5, 1, 3], family_offices=["US;EP;JP;WO", None, None])
    m = features(f)
    assert m["family_offices_count"].tolist()[:2] == [5.0, 1.0]  # CN itself counts
    assert np.isnan(m["family_offices_count"].iloc[2])  # family of 3 but offices unknown
    assert m["is_triadic"].tolist() == [1.0, 0.0, 0.0] and m["is_pct"].tolist() == [1.0, 0.0, 0.0]
    assert m["market_coverage"].iloc[0] == pytest.approx(0.175 + 0.26 + 0.24 + 0.045)
    assert m["market_coverage"].iloc[1] == pytest.approx(0.175)


def test_claims_features_count_chinese_characters_and_words():
    f = frame(claims_total=[10, 1], claims_independent=[2, 1], first_claim_text=["一种电池，包括正极。", "A battery comprising 2 cells."])
    m = features(f)
    assert m["claims_dependent_ratio"].tolist() == [0.8, 0.0]
    assert m["first_claim_words"].tolist() == [8.0, 5.0]


# --- industry and owners -------------------------------------------------------------------


def test_ipc_normalisation_to_the_padded_concordance_form():
    s = normalise_ipc(pd.Series(["G06F 16/30", "H04N21/234", "a61k  31/00", "C12N", "not a code", None]))
    assert s.tolist()[:4] == ["G06F  16/30", "H04N  21/234", "A61K  31/00", "C12N"]
    assert s.iloc[4:].isna().all()


def test_technology_field_longest_pattern_wins(data_dir):
    f = frame(ipc_main=["H04N 21/234", "H04N 5/00", "H04N 1/00", "G06F 16/00", "A61K 31/00"],
              ipc_codes=["H04N 21/234;H04L 29/06;H04N 5/00", None, None, None, None])
    m = features(f, data_dir=data_dir)
    assert m["tech_field"].tolist() == [4.0, 2.0, 3.0, 6.0, 16.0]
    assert m["tech_sector"].tolist()[:4] == ["Electrical engineering"] * 4
    assert m["patent_scope"].tolist() == [2.0, 1.0, 1.0, 1.0, 1.0]


def test_without_the_concordance_sectors_come_from_the_coarse_map(tmp_path):
    b = PatentFeatureBuilder(valuation_date="2026-03-01", data_dir=tmp_path)
    f = frame(ipc_main=["H04N 21/234", "A61K 31/00", "B23K 26/00"])
    m = b.fit(f).transform(f)
    assert m["tech_sector"].tolist() == ["Electrical engineering", "Chemistry", "Mechanical engineering"]
    assert m["tech_field"].isna().all()
    assert any("coarse" in n for n in b.reference_notes_)


def test_applicant_type_from_chinese_and_english_names():
    names = pd.Series(["华为技术有限公司", "清华大学;某公司", "中国科学院微电子研究所", "张三", "Massachusetts Institute of Technology",
                       "Fraunhofer-Gesellschaft", "Acme Widgets, Inc.", "John A. Smith", "某某协会", None])
    assert infer_applicant_type(names).where(names.notna(), None).tolist() == [
        "company", "university", "research_institute", "individual", "university",
        "research_institute", "company", "individual", "other", None,
    ]


def test_event_counts_only_up_to_the_valuation_date():
    events = pd.DataFrame({"patent_id": ["A", "A", "B"], "event": "litigation", "date": pd.to_datetime(["2010-01-01", "2020-01-01", "2012-01-01"])})
    c = event_counts(events, "2015-01-01", patent_ids=["A", "B", "C"])
    assert c["litigation_count"].tolist() == [1.0, 1.0, 0.0]


# --- cohort percentiles ----------------------------------------------------------------------


def test_quantile_percentile_interpolates_and_handles_ties():
    q = np.array([0, 0, 0, 1, 2, 4, 6, 10, 20], dtype=float)  # min p1 p10 p25 p50 p75 p90 p99 max
    pct = quantile_percentile(q, np.array([0.0, 1.0, 3.0, 25.0, -1.0]))
    np.testing.assert_allclose(pct, [0.05, 0.25, 0.625, 1.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_cohort_percentile_is_the_mid_rank_in_the_patents_own_reference(data):
    """Each patent's percentile is (share of its reference below it) + half (share equal to it), with
    the reference chosen as documented: its cohort if large enough, else its filing year, else all."""
    n_fit, n_new = data.draw(st.integers(1, 120)), data.draw(st.integers(1, 60))
    draw = lambda n, hi: np.array(data.draw(st.lists(st.integers(0, hi), min_size=n, max_size=n)), dtype=float)  # noqa: E731
    fit = pd.DataFrame({"v": draw(n_fit, 6), "y": draw(n_fit, 2) + 2010, "f": draw(n_fit, 2)})
    new = pd.DataFrame({"v": draw(n_new, 7), "y": draw(n_new, 3) + 2010, "f": draw(n_new, 3)})
    fit.loc[fit.index % 7 == 3, "v"] = np.nan
    new.loc[new.index % 5 == 4, "v"] = np.nan
    ref = CohortReference(min_size=8).fit(fit["v"], fit["y"], fit["f"])
    pct, source = ref.transform(new["v"], new["y"], new["f"])
    known = fit.dropna(subset=["v"])
    for i, row in new.iterrows():
        cohort = known[(known.y == row.y) & (known.f == row.f)]["v"]
        year = known[known.y == row.y]["v"]
        expected_source, reference = (
            ("missing", None) if np.isnan(row.v) else ("cohort", cohort) if len(cohort) >= 8 else ("year", year) if len(year) >= 8
            else ("all", known["v"]) if len(known) else ("missing", None)
        )
        assert source[i] == expected_source
        if reference is None:
            assert np.isnan(pct[i])
        else:
            assert pct[i] == pytest.approx(((reference < row.v).sum() + 0.5 * (reference == row.v).sum()) / len(reference))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_key_rows_are_the_groups_of_pandas_groupby(data):
    """key_rows gives each key's row positions, keys sorted, as groupby(...).indices does: missing
    key values left out (dropna) or grouped as one value sorted last."""
    from ipvalue.features.cohort import key_rows

    n = data.draw(st.integers(0, 40))
    draw = lambda values: np.array(data.draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)), dtype=float)  # noqa: E731
    y, f = draw([2001.0, 1999.0, 2010.0, np.nan]), draw([3.0, 1.0, 35.0, np.nan])
    for dropna in (True, False):
        for columns, by in (([y, f], ["y", "f"]), ([y], "y")):
            expected = pd.DataFrame({"y": y, "f": f}).groupby(by, dropna=dropna).indices
            got = key_rows(columns, dropna=dropna)
            assert [str(k) for k in got] == [str(k) for k in expected]
            for (_, rows), (_, want) in zip(got.items(), expected.items()):
                assert rows.tolist() == want.tolist()


def test_small_cohorts_use_the_oecd_table(data_dir):
    from ipvalue.io import load_oecd_cohorts

    oecd = load_oecd_cohorts(data_dir)
    row = oecd[(oecd.filing_year == 2010) & (oecd.tech_field == 6) & (oecd.variable == "claims")].iloc[0]
    f = frame(patent_id=["EP1", "EP2"], jurisdiction=["EP", "EP"], filing_date=["2010-05-01", "2010-06-01"],
              ipc_main=["G06F 16/00", "G06F 17/00"], claims_total=[row.p50, row.p90])
    b = PatentFeatureBuilder(valuation_date="2020-01-01", data_dir=data_dir).fit(f)
    r = b.build(f)
    expected = quantile_percentile(row[["min", "p1", "p10", "p25", "p50", "p75", "p90", "p99", "max"]].to_numpy(float), np.array([row.p50, row.p90]))
    np.testing.assert_allclose(r.matrix["claims_pct"], expected)
    assert r.report.set_index("feature").loc["claims_pct", "oecd"] == 2


def test_the_oecd_table_is_indexed_once_per_file_and_gives_what_a_given_table_gives(data_dir):
    """A valuation fits its scorecard's cohort references on its own patents: the OECD table of the
    data folder is read and indexed once per process (per file version), with the same
    percentiles as the same table handed to the builder."""
    from ipvalue.io import load_oecd_cohorts

    f = frame(patent_id=["EP1", "EP2", "EP3"], jurisdiction="EP", filing_date=["2010-05-01", "2010-06-01", "2012-01-01"],
              ipc_main=["G06F 16/00", "G06F 17/00", "H04W 72/04"], claims_total=[7, 25, 12], family_size=[1, 6, 3])
    first = PatentFeatureBuilder(valuation_date="2020-01-01", data_dir=data_dir).fit(f)
    second = PatentFeatureBuilder(valuation_date="2020-01-01", data_dir=data_dir).fit(f)
    given = PatentFeatureBuilder(valuation_date="2020-01-01", concordance=first.concordance_, oecd_cohorts=load_oecd_cohorts(data_dir)).fit(f)
    assert second.oecd_ is first.oecd_ and given.oecd_ is not first.oecd_
    assert second.references_["claims_pct"].oecd.keys() == given.references_["claims_pct"].oecd.keys()
    for name, ref in given.references_.items():
        cached = second.references_[name].oecd
        assert all(np.array_equal(cached[k], v) for k, v in ref.oecd.items()), name
    pd.testing.assert_frame_equal(second.transform(f), given.transform(f))
    assert (given.build(f).report.set_index("feature").loc[["claims_pct", "family_size_pct"], "oecd"] > 0).all()


def test_fitted_cohorts_rank_within_the_cohort(demo):
    b = PatentFeatureBuilder(valuation_date="2026-06-30", spec=FeatureSpec.load("core-v1")).fit(demo.patents)
    r = b.build(demo.patents)
    pct = r.matrix.filter(regex="_pct$")
    assert pct.notna().all().all() and pct.stack().between(0, 1).all()


# --- spec and policies ------------------------------------------------------------------------


def test_spec_hash_is_stable_and_sensitive():
    a, b = FeatureSpec.load("core-v1"), FeatureSpec.load("core-v1")
    assert a.hash == b.hash and len(a.hash) == 16
    raw = dict(a.raw, version=2)
    assert FeatureSpec.from_dict(raw).hash != a.hash


@pytest.mark.parametrize(
    "change, message",
    [
        ({"missing": "guess"}, r"The 'missing' of feature 1 \(claims_total\) .* must be one of \['keep', 'zero', 'median', 'error'\]. Got 'guess'"),
        ({"monotone": 2}, r"The 'monotone' of feature 1 \(claims_total\) .* must be -1, 0 or 1. Got 2"),
        ({"description_zh": ""}, r"has no 'description_zh'"),
    ],
)
def test_bad_specs_are_refused_with_the_feature_named(change, message):
    raw = FeatureSpec.load("core-v1").raw
    bad = dict(raw, features=[dict(raw["features"][0], **change)] + raw["features"][1:])
    with pytest.raises(SpecError, match=message):
        FeatureSpec.from_dict(bad)


def test_missing_policy_error_names_feature_and_row(tiny_frame):
    spec = FeatureSpec.load("core-v1").raw
    spec = dict(spec, features=[dict(f, missing="error") if f["name"] == "claims_total" else f for f in spec["features"]])
    f = validate_patent_frame(tiny_frame.assign(claims_total=[None, "3", "4"], claims_independent=None)).valid
    b = PatentFeatureBuilder(spec=spec, valuation_date="2020-01-01").fit(f.iloc[1:])
    with pytest.raises(SpecError, match=r"Feature 'claims_total' is missing for 1 patent\(s\), e.g. row 0 \(CN111111111B\)"):
        b.transform(f)


def test_transform_does_not_mutate_and_is_deterministic(demo):
    patents = demo.patents.copy()
    b = PatentFeatureBuilder(valuation_date="2026-06-30").fit(patents)
    a1, a2 = b.transform(patents), b.transform(patents)
    pd.testing.assert_frame_equal(patents, demo.patents)
    pd.testing.assert_frame_equal(a1, a2)


# --- properties (hypothesis) ----------------------------------------------------------------

patent_rows = st.fixed_dictionaries(
    {
        "jurisdiction": st.sampled_from(["CN", "US", "EP", "JP"]),
        "patent_type": st.sampled_from(["invention", "utility_model", "design"]),
        "filing_date": st.dates(min_value=pd.Timestamp("1990-01-01").date(), max_value=pd.Timestamp("2025-12-31").date()),
        "grant_lag_days": st.one_of(st.none(), st.integers(0, 3000)),
        "legal_status": st.sampled_from(["in_force", "lapsed", "unknown", "pending"]),
        "term_adjustment_days": st.one_of(st.none(), st.integers(0, 1500)),
        "claims_total": st.integers(1, 80),
    }
).filter(lambda r: not (r["jurisdiction"] == "US" and r["patent_type"] == "utility_model"))


def _hyp_frame(rows):
    df = pd.DataFrame(rows)
    df["patent_id"] = [f"P{i}" for i in range(len(df))]
    df["filing_date"] = pd.to_datetime(df["filing_date"])
    df["grant_date"] = df["filing_date"] + pd.to_timedelta(df.pop("grant_lag_days"), unit="D")
    return validate_patent_frame(df, strict=True).valid


_builder_cache = {}


def _life(patents, vd):
    if vd not in _builder_cache:
        _builder_cache[vd] = PatentFeatureBuilder(valuation_date=vd, spec=FeatureSpec.load("core-v1")).fit(patents)
    return _builder_cache[vd].transform(patents)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(patent_rows, min_size=1, max_size=12), days=st.integers(0, 9000), later=st.integers(1, 4000))
def test_remaining_life_bounded_and_never_rises_as_the_date_moves_later(rows, days, later):
    patents = _hyp_frame(rows)
    d1 = pd.Timestamp("2000-01-01") + pd.Timedelta(days=days)
    d2 = d1 + pd.Timedelta(days=later)
    b1 = PatentFeatureBuilder(valuation_date=d1).fit(patents)
    b2 = PatentFeatureBuilder(valuation_date=d2, concordance=b1.concordance_, oecd_cohorts=b1.oecd_cohorts).fit(patents)
    m1, m2 = b1.transform(patents), b2.transform(patents)
    assert (m1["remaining_life_years"] >= 0).all()
    assert (m1["remaining_life_years"] <= m1["statutory_term_years"] + 1e-9).all()
    # a grant between the dates may start a grant-based term (a US design): before it the term runs from filing, a lower bound
    known = ~(patents["grant_date"].gt(d1) & patents["grant_date"].le(d2)).to_numpy()
    assert (m2["remaining_life_years"][known] <= m1["remaining_life_years"][known] + 1e-9).all()
    assert m1.filter(regex="_pct$").stack().dropna().between(0, 1).all()
    pd.testing.assert_frame_equal(m1, b1.transform(patents.copy()))


def test_a_us_design_granted_between_two_dates_gains_the_term_that_runs_from_its_grant():
    # 35 U.S.C. 173: 15 years from grant. Before the grant the term runs from filing (a lower bound), so the remaining life rises at the grant.
    patents = _hyp_frame([{"jurisdiction": "US", "patent_type": "design", "filing_date": pd.Timestamp("2016-03-01").date(), "grant_lag_days": 700,
                           "legal_status": "in_force", "term_adjustment_days": None, "claims_total": 1}])
    before, after = pd.Timestamp("2017-06-01"), pd.Timestamp("2018-06-01")  # granted 2018-01-30
    m1 = PatentFeatureBuilder(valuation_date=before).fit(patents).transform(patents)
    m2 = PatentFeatureBuilder(valuation_date=after).fit(patents).transform(patents)
    assert m1["remaining_life_years"].iloc[0] == pytest.approx((pd.Timestamp("2031-03-01") - before).days / 365.25, abs=0.01)
    assert m2["remaining_life_years"].iloc[0] == pytest.approx((pd.Timestamp("2033-01-30") - after).days / 365.25, abs=0.01)


# --- the real data ------------------------------------------------------------------------------


def test_university_patents_remaining_life_and_sections(university, data_dir):
    b = PatentFeatureBuilder(valuation_date="2017-06-01", data_dir=data_dir).fit(university)
    r = b.build(university)
    m = r.matrix
    # granted 2004-2007, filed 1995 or later: 20 years from filing, still running in June 2017
    assert (m["statutory_term_years"] == 20).all()
    expected = (university["filing_date"].map(lambda d: d.replace(year=d.year + 20)) - pd.Timestamp("2017-06-01")).dt.days / YEAR
    np.testing.assert_allclose(m["remaining_life_years"], expected.clip(lower=0), rtol=1e-12)
    assert m["remaining_life_years"].between(0, 20).all() and m["remaining_life_years"].median() > 5
    assert (m["is_granted"] == 1).all()
    assert m["grant_lag_years"].between(0, 20).all()
    # the source gives the first CPC section only: sections known, fields honestly missing
    assert m["ipc_section"].notna().all() and m["tech_field"].isna().all()
    assert (m["applicant_type"] == "university").mean() > 0.95
    assert m["bwd_cits_pct"].between(0, 1).all()


def test_full_width_ipc_code_is_folded_before_parsing():
    # issue 15 finding 5: Ｇ０６Ｆ１７／３０ (a full-width export) got no technology field.
    s = normalise_ipc(pd.Series(["Ｇ０６Ｆ１７／３０", "ｈ０４ｎ　２１／２３４"]))
    assert s.tolist() == ["G06F  17/30", "H04N  21/234"]


def test_a_spec_name_is_found_in_the_installed_package_when_no_checkout_is_there(tmp_path, monkeypatch):
    """In the wheel, features/ is shipped as ipvalue/specs: a name resolves there, outside any checkout."""
    from ipvalue.features import spec as spec_module

    packaged = tmp_path / "site-packages" / "ipvalue" / "specs"
    packaged.mkdir(parents=True)
    (packaged / "core-v1.yaml").write_bytes((spec_module.REPO_FEATURES / "core-v1.yaml").read_bytes())
    monkeypatch.setattr(spec_module, "PACKAGED_FEATURES", packaged)
    monkeypatch.setattr(spec_module, "REPO_FEATURES", tmp_path / "no-checkout" / "features")
    monkeypatch.chdir(tmp_path)
    assert FeatureSpec.load("core-v1").hash == FeatureSpec.load(str(packaged / "core-v1.yaml")).hash
    with pytest.raises(SpecError, match=r"Feature spec 'core-v9' not found \(looked for .*features/core-v9.yaml, .*ipvalue/specs/core-v9.yaml, "
                                        r".*no-checkout/features/core-v9.yaml\)\. Fix: pass a path to a features/\*.yaml file\."):
        FeatureSpec.load("core-v9")


# --- builder groups shared within a valuation ---------------------------------------------------


class _RecordingContext:
    """A build context that records which of its fields a builder reads."""

    def __init__(self, ctx):
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "read", set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._ctx, name)


def test_each_builder_reads_only_the_context_it_declares(demo, data_dir):
    """The shared groups are keyed on what a group declares it reads: an undeclared read would let a
    valuation reuse columns built for another context."""
    from ipvalue.features.owners import owner_book_from_frame
    from ipvalue.features.transformer import GROUP_BUILDERS, GROUP_READS

    patents = demo.patents.head(40)
    book = owner_book_from_frame(patents, pd.Series(pd.NaT, index=patents.index))
    builder = PatentFeatureBuilder(valuation_date="2026-06-30", data_dir=data_dir, owner_book=book).fit(patents)
    assert set(GROUP_READS) == set(GROUP_BUILDERS)
    for group, build in GROUP_BUILDERS.items():
        ctx = _RecordingContext(builder._context())
        build(builder._as_frame(patents), ctx)
        assert ctx.read <= set(GROUP_READS[group]), f"{group} reads {sorted(ctx.read - set(GROUP_READS[group]))} without declaring it"


def test_shared_groups_give_the_same_features_and_build_each_group_once(demo, data_dir, monkeypatch):
    from ipvalue.features import shared_feature_groups, transformer

    patents = demo.patents.head(30)
    core = PatentFeatureBuilder(valuation_date="2026-06-30", data_dir=data_dir).fit(patents)
    later = PatentFeatureBuilder(valuation_date="2027-06-30", data_dir=data_dir).fit(patents)
    alone = [core.build(patents).matrix, later.build(patents).matrix]
    calls = []
    for group, build in list(transformer.GROUP_BUILDERS.items()):
        monkeypatch.setitem(transformer.GROUP_BUILDERS, group, lambda f, c, g=group, b=build: calls.append(g) or b(f, c))
    with shared_feature_groups():
        shared = [core.build(patents).matrix, core.build(patents.copy()).matrix, later.build(patents).matrix]
    for got, expected in zip(shared, [alone[0], alone[0], alone[1]]):
        pd.testing.assert_frame_equal(got, expected)
    # the second build of the same patents and date reuses every group; a later date rebuilds only the dated groups
    assert sorted(calls) == sorted([*(g for g in ("claims", "family", "citations", "life", "industry", "events")), "citations", "life"])
    calls.clear()
    core.build(patents)  # outside the block nothing is kept
    assert "claims" in calls
