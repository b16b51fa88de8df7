"""Calibrated sets are governed like models: the loader refuses a candidate and a set whose
promotion the audit store does not record; a validator (API token, role validator) promotes a
candidate whose gates passed, signed and audited, and it is installed where valuations read the
bank's sets; every valuation names the versions and hashes of the sets it used."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
import yaml

from ipvalue import audit
from ipvalue.audit import Identity, add_user, read_audit_table, verify
from ipvalue.calibration import PilotTruth, make_pilot_ledger, write_ledger
from ipvalue.calibration.promote import SetPromotionError, promote_set
from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import SpecError
from ipvalue.lending.disposal import DisposalAssumptions
from ipvalue.methods.income.assumptions import IncomeAssumptions
from tests.conftest import NO_OTHER_APPLICATIONS, synthetic_application

pytestmark = pytest.mark.filterwarnings("ignore")

AS_OF = PilotTruth().as_of


def _settings() -> dict:
    """The shipped calibration settings with fewer interval draws (a faster run, the same gates)."""
    raw, _ = load_yaml("calibration-cn")
    raw["interval"]["draws"]["value"] = 400
    return raw


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Calibrations of one 800-loan synthetic ledger: one run by an authenticated analyst, one by an
    unauthenticated OS user (both pass their gates), and one whose back-test tests the last few loans
    only (too few disposals: its gates fail)."""
    from ipvalue.calibration.run import calibrate

    folder = tmp_path_factory.mktemp("calibrations")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    write_ledger(make_pilot_ledger(PilotTruth(), seed=0), folder / "ledger")
    by_analyst = calibrate(folder / "ledger", out=folder / "analyst", as_of=AS_OF, tracking_uri=uri, settings=_settings(), calibrated_by="zhang.analyst", report_pdf=False)
    anonymous = calibrate(folder / "ledger", out=folder / "anonymous", as_of=AS_OF, tracking_uri=uri, settings=_settings(), report_pdf=False)
    thin = calibrate(folder / "ledger", out=folder / "thin-out", as_of=AS_OF, tracking_uri=uri, settings=_settings(), calibrated_by="zhang.analyst",
                     split_date="2024-09-30", report_pdf=False)
    assert by_analyst.gates_passed and anonymous.gates_passed and not thin.gates_passed
    return {"uri": uri, "analyst": by_analyst, "anonymous": anonymous, "thin": thin}


@pytest.fixture
def bank(tmp_path, monkeypatch):
    """The bank's audit store (anchored), configuration folder and users, as valuations see them."""
    store, key, config = tmp_path / "audit" / "audit.db", tmp_path / "keys" / "audit.key", tmp_path / "config"
    monkeypatch.setenv("IPVALUE_AUDIT_DB", str(store))
    monkeypatch.setenv("IPVALUE_AUDIT_KEY_FILE", str(key))
    monkeypatch.setenv("IPVALUE_CONFIG_DIR", str(config))
    tokens = {name: add_user(name, role) for name, role in
              (("wang.validator", "validator"), ("zhao.validator", "validator"), ("li.officer", "officer"), ("zhang.analyst", "validator"))}
    return type("Bank", (), {"store": store, "key": key, "config": config, "tokens": tokens, "assumptions": config / "assumptions"})


def candidate(run, name: str):
    return run.out / "candidates" / next(c.file_name for c in run.candidates if c.name == name)


def test_a_candidate_is_refused_by_the_loader_and_by_a_valuation(runs, bank):
    from ipvalue.lending import LoanApplication, value_application

    bank.assumptions.mkdir(parents=True)
    shutil.copy(candidate(runs["analyst"], "cn-pledge-2025"), bank.assumptions / "cn-pledge-2025.yaml")
    with pytest.raises(SpecError, match=r"set cn-pledge-2025-v4 is a CANDIDATE written by ipvalue calibrate \(run [0-9a-f]+\); no valuation may use it "
                                        r"until a validator promotes it\. Fix: .*ipvalue calibrate promote"):
        IncomeAssumptions.load("cn-pledge-2025")
    with pytest.raises(SpecError, match="is a CANDIDATE"):
        value_application(LoanApplication.from_dict(synthetic_application()), applications=NO_OTHER_APPLICATIONS, user="t")
    # the governance block cut off: its numbers still cite the calibration run
    content = yaml.safe_load(candidate(runs["analyst"], "disposal-cn").read_text(encoding="utf-8"))
    del content["governance"]
    (bank.assumptions / "disposal-cn.yaml").write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError, match=r"set disposal-cn-v2 has numbers calibrated by ipvalue calibrate but no 'governance' block"):
        DisposalAssumptions.load("disposal-cn")


def test_a_validator_promotes_signed_and_audited_and_valuations_name_the_promoted_versions(runs, bank):
    from ipvalue import workflow
    from ipvalue.lending import LoanApplication

    run = runs["analyst"]
    promoted = {}
    for name in ("cn-pledge-2025", "disposal-cn", "pledge-policy-cn"):
        promoted[name] = promote_set(candidate(run, name), reason="样本外回测偏差与P10覆盖率通过 back-test gates pass", token=bank.tokens["wang.validator"],
                                     tracking_uri=runs["uri"])
    installed = yaml.safe_load((bank.assumptions / "disposal-cn.yaml").read_text(encoding="utf-8"))
    g = installed["governance"]
    assert g["status"] == "promoted" and g["promoted_by"] == "wang.validator" and g["calibrated_by"] == "zhang.analyst"
    assert g["calibration_run"] == run.run_id and g["audit_record"]["seq"] == promoted["disposal-cn"].audit_seq
    assert g["audit_record"]["record_hash"] == promoted["disposal-cn"].record_hash and g["reason"].startswith("样本外回测")
    rows = read_audit_table("set_promotions")
    assert rows["set_name"].tolist() == ["cn-pledge-2025", "disposal-cn", "pledge-policy-cn"] and set(rows["promoted_by"]) == {"wang.validator"}
    chain = read_audit_table("audit_chain")
    assert chain["kind"].tolist()[-3:] == ["promotion"] * 3 and chain["link_hmac"].notna().all()
    report = verify()
    assert report.passed and report.n_promotions == 3 and "3 set promotion(s)" in str(report)
    assert DisposalAssumptions.load("disposal-cn").forced_sale_discount == installed["forced_sale_discount"]["value"]

    recorded = workflow.value_and_record(LoanApplication.from_dict(synthetic_application()), store=bank.store, identity=Identity("li.officer", "officer"))
    prov = recorded.result.provenance
    for key, name in (("assumption_set", "cn-pledge-2025"), ("disposal_assumption_set", "disposal-cn"), ("pledge_policy", "pledge-policy-cn")):
        raw, _ = load_yaml(name)
        assert prov[key] == f"{name}-v{raw['version']}" and prov[f"{key}_hash"] == content_hash(raw), key
    assert prov["assumption_set"] == "cn-pledge-2025-v4" and prov["disposal_assumption_set"] == "disposal-cn-v2" and prov["pledge_policy"] == "pledge-policy-cn-v5"
    assert json.loads(read_audit_table("valuations")["provenance_json"].iloc[-1])["assumption_set_hash"] == prov["assumption_set_hash"]
    assert verify().passed


def test_promotion_is_refused_to_a_non_validator_to_the_calibrator_and_without_passed_gates(runs, bank):
    run = runs["analyst"]
    attempts = [
        (run, "li.officer", {}, r"User 'li.officer' has role 'officer'; promoting a calibrated set needs role validator"),
        (run, "zhang.analyst", {}, r"cn-pledge-2025-v4 was calibrated by zhang.analyst, who may not also promote it"),
        (runs["thin"], "wang.validator", {}, r"did not pass its gates \(failed: .*\). Fix: a set is promoted only through passed gates"),
        (runs["anonymous"], "wang.validator", {},  # this process's OS user ran the calibration
         r"was run by operating-system user .* without an API token, and wang.validator promotes as the same user: ipvalue cannot tell them apart"),
    ]
    for source, who, options, message in attempts:
        with pytest.raises(SetPromotionError, match=message):
            promote_set(candidate(source, "cn-pledge-2025"), reason="ok", token=bank.tokens[who], tracking_uri=runs["uri"], **options)
    with pytest.raises(SetPromotionError, match="needs a reason"):
        promote_set(candidate(run, "cn-pledge-2025"), reason=" ", token=bank.tokens["wang.validator"], tracking_uri=runs["uri"])
    assert read_audit_table("set_promotions").empty and not bank.assumptions.exists()  # nothing recorded, nothing installed
    # another OS account than the calibration's: the anonymous run may be promoted
    done = promote_set(candidate(runs["anonymous"], "disposal-cn"), reason="ok", token=bank.tokens["wang.validator"], tracking_uri=runs["uri"],
                       os_user="validator-desk")
    assert done.set_name == "disposal-cn" and DisposalAssumptions.load("disposal-cn").version == 2


def test_an_edited_or_stale_candidate_is_refused(runs, bank, tmp_path):
    run = runs["analyst"]
    edited = yaml.safe_load(candidate(run, "disposal-cn").read_text(encoding="utf-8"))
    edited["forced_sale_discount"]["value"] = 0.5
    (tmp_path / "disposal-cn-v2.yaml").write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SetPromotionError, match=r"differs from the candidate disposal-cn-v2.yaml that calibration run [0-9a-f]+ logged: a number was changed"):
        promote_set(tmp_path / "disposal-cn-v2.yaml", reason="ok", token=bank.tokens["wang.validator"], tracking_uri=runs["uri"])
    first = promote_set(candidate(run, "disposal-cn"), reason="ok", token=bank.tokens["wang.validator"], tracking_uri=runs["uri"])
    assert first.superseded is None
    with pytest.raises(SetPromotionError, match=r"disposal-cn-v2 was calibrated from disposal-cn-v1, but the set in use is disposal-cn-v2 .*stale"):
        promote_set(candidate(runs["anonymous"], "disposal-cn"), reason="ok", token=bank.tokens["zhao.validator"], tracking_uri=runs["uri"],
                    os_user="validator-desk")


def test_a_set_claiming_promotion_the_store_does_not_record_is_refused(runs, bank, tmp_path, monkeypatch):
    from ipvalue import workflow
    from ipvalue.lending import LoanApplication

    promote_set(candidate(runs["analyst"], "disposal-cn"), reason="ok", token=bank.tokens["wang.validator"], tracking_uri=runs["uri"])
    installed = bank.assumptions / "disposal-cn.yaml"
    text = installed.read_text(encoding="utf-8")
    # a number edited after the promotion
    installed.write_text(text.replace("value: 0.68", "value: 0.5", 1), encoding="utf-8")
    with pytest.raises(SpecError, match=r"set disposal-cn-v2 differs from the promotion the audit store .* records .*: its numbers\. Fix"):
        DisposalAssumptions.load("disposal-cn")
    installed.write_text(text, encoding="utf-8")
    assert DisposalAssumptions.load("disposal-cn").version == 2
    # another store (the promotion is recorded in the bank's, not there)
    other = tmp_path / "other.db"
    add_user("qian.validator", "validator", other)
    monkeypatch.setenv("IPVALUE_AUDIT_DB", str(other))
    with pytest.raises(SpecError, match=r"claims promotion by 'wang.validator' \(audit record 5\), but the audit store .*other.db' records no promotion of it"):
        DisposalAssumptions.load("disposal-cn")
    # the workflow checks the sets against the store it records the valuation in, whatever $IPVALUE_AUDIT_DB says
    app = LoanApplication.from_dict(synthetic_application())
    assert workflow.value_and_record(app, store=bank.store, identity=Identity("li.officer", "officer")).result.provenance["disposal_assumption_set"] == "disposal-cn-v2"
    monkeypatch.setenv("IPVALUE_AUDIT_DB", str(bank.store))
    with pytest.raises(SpecError, match=r"records no promotion of it"):
        workflow.value_and_record(app, store=other, identity=Identity("qian.validator", "officer"))
    assert read_audit_table("valuations", other).empty  # refused before anything was recorded
    # a promotion row written around ipvalue.audit (not in the chain): verify finds it, the loader refuses a set claiming it
    with sqlite3.connect(bank.store) as con:
        for op in ("update", "delete"):
            con.execute(f"DROP TRIGGER IF EXISTS set_promotions_no_{op}")
        con.execute("UPDATE set_promotions SET reason = 'approved by the committee'")  # the validator's words rewritten
    report = verify()
    assert not report.ok and report.kind == "promotion" and report.first_broken == "disposal-cn-v2"
    assert report.problem == "the promotion row differs from what was recorded"
    with pytest.raises(SpecError, match=r"claims promotion by 'wang.validator' \(audit record 5\), but the audit store .* records no promotion of it"):
        DisposalAssumptions.load("disposal-cn")


def test_a_version_store_without_promotions_is_refused_not_migrated(tmp_path):
    from ipvalue.exceptions import AuditStoreError

    db = tmp_path / "v2.db"
    with sqlite3.connect(db) as con:  # the schema-2 layout: the chain's columns, no set_promotions
        con.execute("CREATE TABLE audit_chain (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, valuation_id TEXT, token_id INTEGER, prev_hash TEXT NOT NULL, "
                    "record_hash TEXT NOT NULL, link_hmac TEXT)")
    with pytest.raises(AuditStoreError, match=r"audit schema 2: its chain cannot hold the promotions of calibrated sets\). Fix: keep it read-only"):
        verify(db)
    assert audit.SCHEMA_VERSION == "4"


def test_the_command_promotes_with_the_validators_token_only(runs, bank, monkeypatch, capsys):
    from ipvalue.cli import main

    args = ["calibrate", "promote", str(candidate(runs["analyst"], "pledge-policy-cn")), "--reason", "回测通过 gates pass", "--tracking-uri", runs["uri"]]
    monkeypatch.setenv("IPVALUE_TOKEN", bank.tokens["li.officer"])
    assert main(args) == 3
    assert "User 'li.officer' has role 'officer'; this act needs role validator" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", bank.tokens["wang.validator"])
    assert main(args[:3] + ["--tracking-uri", runs["uri"]]) == 1  # no reason
    assert "promotion refused: Promoting pledge-policy-cn-v5 needs a reason" in capsys.readouterr().err
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "晋级 promoted (wang.validator): pledge-policy-cn-v5 promoted by wang.validator" in out
    assert main(["calibrate", "promote", "--reason", "x"]) == 2
    assert load_yaml("pledge-policy-cn")[0]["version"] == 5


def test_every_valuation_names_the_version_and_hash_of_every_set_it_used(value_registry, tmp_path):
    """Income, scorecard, industry margins, WACC, disposal, pledge policy, reconciliation, market,
    cost and the ML value set: each as name-vN with its hash."""
    import pandas as pd

    from ipvalue.lending import LoanApplication, value_application

    _, uri, _ = value_registry
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 900_000 * (1 + i / 10), "patent_type": t,
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, t in enumerate(["invention"] * 3 + ["utility_model"] * 3)]
                 ).to_csv(tmp_path / "comparables.csv", index=False)
    raw = synthetic_application(comparables="comparables.csv", rd_cost={"rmb": 3_000_000, "year": 2022}, models={"value": "models:/ipvalue-value@champion"})
    r = value_application(LoanApplication.from_dict(raw, base_dir=tmp_path), applications=NO_OTHER_APPLICATIONS, user="t", tracking_uri=uri)
    p = r.provenance
    sets = {"assumption_set": "cn-pledge-2025", "scorecard": "scorecard-pledge", "industry_margin_set": "industry-margins",
            "disposal_assumption_set": "disposal-cn", "pledge_policy": "pledge-policy-cn", "reconciliation_rules": "reconciliation-cn",
            "market_assumption_set": "market-cn", "cost_assumption_set": "cost-cn", "ml_value_set": "ml-value"}
    for key, name in sets.items():
        raw_set, _ = load_yaml(name)
        assert p[key] == f"{name}-v{raw_set['version']}" and p[f"{key}_hash"] == content_hash(raw_set), key
    wacc, _ = load_yaml("wacc-cn")
    assert p["wacc_source"] == f"wacc-cn-v{wacc['version']}" and p["wacc_set_hash"] == content_hash(wacc)
