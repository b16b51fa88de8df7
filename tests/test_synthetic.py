"""The synthetic demo portfolio: labelled synthetic, valid, reproducible."""

import pandas as pd

from ipvalue.synthetic import make_demo_portfolio
from ipvalue.frame import validate_patent_frame


def test_demo_is_valid_and_labelled_synthetic(demo):
    res = validate_patent_frame(demo.patents)
    assert len(res.quarantine) == 0
    assert (demo.patents["data_origin"] == "synthetic").all() and (demo.loans["data_origin"] == "synthetic").all()
    assert demo.patents["patent_id"].str.startswith("SYN-").all()
    assert set(demo.patents["loan_id"]) == set(demo.loans["loan_id"])


def test_demo_is_reproducible_and_seed_dependent():
    a, b, c = make_demo_portfolio(50, seed=3), make_demo_portfolio(50, seed=3), make_demo_portfolio(50, seed=4)
    pd.testing.assert_frame_equal(a.patents, b.patents)
    assert not a.patents["claims_total"].equals(c.patents["claims_total"])


def test_demo_distributions_are_plausible():
    p = make_demo_portfolio(3000, seed=0).patents
    share = p["patent_type"].value_counts(normalize=True)
    assert 0.4 < share["invention"] < 0.5 and 0.4 < share["utility_model"] < 0.5
    inv = p[p["patent_type"] == "invention"]
    assert 9 <= inv["claims_total"].median() <= 13  # OECD claims cohort median is 11
    assert (p["family_size"] == 1).mean() > 0.7
    assert (p["appraised_value_rmb"].isna() == (p["legal_status"] != "in_force")).all()
