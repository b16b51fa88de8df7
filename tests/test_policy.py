"""The pledge policy and the risk-sharing schemes."""

import pytest

from ipvalue.exceptions import AssumptionError
from ipvalue.lending import risk_sharing_table

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("scheme", ["guangzhou-55", "5311", "541", "zhongshan", "pudong", "suzhou", "none"])
def test_every_risk_sharing_scheme_sums_to_one_hundred_percent(scheme):
    table, info = risk_sharing_table(scheme, 1_000_000)
    assert table["share"].sum() == pytest.approx(1.0) and table["loss_rmb"].sum() == pytest.approx(1_000_000)
    assert table["is_bank"].sum() == 1
    expected_bank = {"guangzhou-55": 0.5, "5311": 0.1, "541": 0.1, "zhongshan": 0.26, "pudong": 0.05, "suzhou": 0.2, "none": 1.0}[scheme]
    assert info["bank_share"] == expected_bank


def test_unknown_scheme_is_refused():
    with pytest.raises(AssumptionError, match=r"Unknown risk-sharing scheme 'shenzhen'. Fix: use one of"):
        risk_sharing_table("shenzhen", 1.0)
