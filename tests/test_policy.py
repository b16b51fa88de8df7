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


def _install(tmp_path, monkeypatch, raw):
    import yaml

    (tmp_path / "assumptions").mkdir(exist_ok=True)
    (tmp_path / "assumptions" / f"{raw['name']}.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("IPVALUE_CONFIG_DIR", str(tmp_path))


def test_no_policy_can_raise_the_ten_million_route(tmp_path, monkeypatch):
    # issue 15 finding 2: a policy with the shipped name and a ¥1bn limit made a ¥12M loan eligible
    from ipvalue.config import load_yaml
    from ipvalue.lending import load_pledge_policy

    raw, _ = load_yaml("pledge-policy-cn")
    raw.update(name="bank-policy")
    raw["internal_valuation_limit_rmb"]["value"] = 1_000_000_000
    _install(tmp_path, monkeypatch, raw)
    with pytest.raises(AssumptionError, match=r"must be in \(0, 10,000,000\].*a bank may lower the limit, not raise it"):
        load_pledge_policy("bank-policy")


def test_a_bank_set_reusing_a_shipped_name_and_version_with_other_content_is_refused(tmp_path, monkeypatch):
    from ipvalue.config import load_yaml
    from ipvalue.exceptions import SpecError
    from ipvalue.lending import load_pledge_policy

    raw, _ = load_yaml("pledge-policy-cn")
    raw["pledge_rate"]["invention"]["value"] = 1.0  # same name and version, different content
    _install(tmp_path, monkeypatch, raw)
    with pytest.raises(SpecError, match=r"has the name and version of the shipped set pledge-policy-cn-v4 but different content"):
        load_pledge_policy("pledge-policy-cn")
