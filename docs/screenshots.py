"""The README's screenshots of the officers' and reviewers' page, taken in headless Chromium from a
real ``ipvalue serve`` on the demo's output (SYNTHETIC data throughout).

    .venv/bin/python docs/screenshots.py --demo demo-output --tracking-uri sqlite:///mlflow/mlflow.db
    .venv/bin/python docs/screenshots.py                  # runs 'ipvalue demo' into a temporary folder first

It issues an officer's and a reviewer's token in a fresh audit store of its own (the demo's store
is not touched), serves the demo's registered models, and then, as the users would:

1. the officer signs in, uploads the borrower's patents (the demo export's rows of the demo
   application's borrower), ticks the application's patents and fills the form from
   ``demo_application.yaml`` (financial statements, tax rate, R&D cost, the comparables file,
   documents) -> ``docs/images/officer-form.png``; submits -> ``docs/images/decision.png``;
2. the first page of the report's PDF, rasterised with poppler's ``pdftoppm`` ->
   ``docs/images/report-page1.png``;
3. the reviewer signs in and lands on the queue of valuations awaiting sign-off ->
   ``docs/images/reviewer-queue.png``.

The server is stopped by its process id at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
WIDTH = 1400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_folder(folder: Path | None, uri: str, work: Path) -> Path:
    """The demo's output folder (``ipvalue demo`` is run into ``work/demo`` when none is given)."""
    if folder is not None:
        return folder
    subprocess.run([sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "demo", "--out", str(work / "demo"),
                    "--tracking-uri", uri], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work / "demo"


def serve(work: Path, uri: str, models: dict) -> tuple[subprocess.Popen, str, dict]:
    """``ipvalue serve`` on a free loopback port with a fresh audit store and two users."""
    import requests

    from ipvalue.audit import add_user

    db, key = work / "audit.db", work / "audit.key"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IPVALUE_AUDIT_KEY_FILE": str(key)}
    os.environ["IPVALUE_AUDIT_KEY_FILE"] = str(key)
    tokens = {"officer": add_user("zhang.wei", "officer", db, key_file=key, branch="guangzhou-tianhe"),
              "reviewer": add_user("li.na", "reviewer", db, key_file=key, branch="guangzhou-tianhe")}
    port = free_port()
    command = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "serve", "--port", str(port),
               "--audit-db", str(db), "--state-dir", str(work / "state"), "--tracking-uri", uri, *[a for m in models.values() for a in ("--model", m)]]
    log = open(work / "server.log", "wb")
    process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(480):
        if process.poll() is not None:
            break
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url, tokens
        except requests.ConnectionError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("ipvalue serve did not start: " + (work / "server.log").read_text()[-3000:])


def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={WIDTH},1000", "--hide-scrollbars", "--lang=zh-CN"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"), env={**os.environ, "LANG": "zh_CN.UTF-8", "LANGUAGE": "zh_CN:zh"})
    driver = webdriver.Chrome(options=options, service=service)  # a Chinese browser: its date inputs read 年/月/日
    driver.set_page_load_timeout(300)
    return driver


class Walk:
    """A user on the page: sign in, fill fields by id, click, wait, save the page as a PNG."""

    def __init__(self, driver, url: str):
        from selenium.webdriver.common.by import By

        self.driver, self.url, self.by = driver, url, By

    def wait(self, element_id: str):
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, 300).until(ec.presence_of_element_located((self.by.ID, element_id)))

    def sign_in(self, token: str) -> None:
        self.driver.delete_all_cookies()
        self.driver.get(self.url + "/ui")
        self.wait("token").send_keys(token)
        self.driver.find_element(self.by.ID, "login").click()

    def fill(self, element_id: str, value) -> None:
        from selenium.webdriver.support.ui import Select

        element = self.driver.find_element(self.by.ID, element_id)
        if element.get_attribute("type") == "date":
            self.driver.execute_script("arguments[0].value = arguments[1]", element, str(value))
        elif element.tag_name == "select":
            Select(element).select_by_value(str(value))
        elif element.get_attribute("type") == "file":
            element.send_keys(str(value))
        elif element.get_attribute("type") == "checkbox":
            if not element.is_selected():
                element.click()
        else:
            element.clear()
            element.send_keys(str(value))

    def save(self, path: Path, *, max_height: int = 2400) -> Path:
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(WIDTH, min(max(height + 140, 500), max_height))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(WIDTH, 1000)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        return path


def percent(value: float) -> str:
    return f"{100 * float(value):.10g}"


def officer_walk(walk: Walk, demo: Path, app: dict, work: Path, out: Path, token: str) -> str:
    """The officer's form filled from the demo application; returns the decision page's URL."""
    import pandas as pd

    patents = pd.read_csv(demo / app["patents"]["file"], dtype=str)
    mine = patents[patents["applicants"].fillna("").str.contains(app["borrower"], regex=False)]
    mine.to_csv(work / "borrower-export.csv", index=False)  # what an officer exports: the borrower's patents
    walk.sign_in(token)
    walk.wait("file")
    walk.fill("file", work / "borrower-export.csv")
    walk.driver.find_element(walk.by.ID, "upload").click()
    walk.wait("submit")
    shown = [b.get_attribute("value") for b in walk.driver.find_elements(walk.by.NAME, "ids")]
    for pid in app["patents"]["ids"]:
        walk.fill(f"pick-{shown.index(pid) + 1}", True)
    forecast = app["revenue_forecast"]
    values = {"application_id": app["application_id"], "borrower": app["borrower"], "requested_amount_rmb": f"{app['requested_amount_rmb']:,.0f}",
              "term_years": f"{app['term_years']:g}", "valuation_date": app["valuation_date"], "purpose": "流动资金周转 working capital",
              "revenue_base_rmb": f"{forecast['base_rmb']:,.0f}", "revenue_growth": percent(forecast.get("growth", 0)),
              "tax_rate": f"{app['tax_rate']:g}" if app.get("tax_rate") in (0.25, 0.15) else "", "risk_sharing": app.get("risk_sharing", "none")}
    if app.get("rd_cost"):
        values.update(rd_cost_rmb=f"{app['rd_cost']['rmb']:,.0f}", rd_cost_year=app["rd_cost"]["year"])
    if app.get("comparables"):
        values["comparables_file"] = (demo / app["comparables"]).resolve()
    for i, row in enumerate(app.get("financials") or []):
        values.update({f"fin_year_{i}": row["year"], f"fin_revenue_rmb_{i}": f"{row['revenue_rmb']:,.0f}", f"fin_operating_margin_{i}": percent(row["operating_margin"])})
    for name, value in values.items():
        walk.fill(name, value)
    documents = app.get("documents") or []
    while len(walk.driver.find_elements(walk.by.CSS_SELECTOR, "[id^=doc_kind_]")) < len(documents):
        walk.driver.find_element(walk.by.ID, "more_rows").click()
        walk.wait("submit")
    for i, d in enumerate(documents):
        walk.fill(f"doc_patent_id_{i}", d["patent_id"])
        walk.fill(f"doc_kind_{i}", d["kind"])
        walk.fill(f"doc_reference_{i}", d["reference"])
        for extra in ("co_owner", "paid_until"):
            if d.get(extra):
                walk.fill(f"doc_{extra}_{i}", d[extra])
    walk.save(out / "officer-form.png", max_height=3200)
    walk.driver.find_element(walk.by.ID, "submit").click()
    walk.wait("decision")
    walk.save(out / "decision.png")
    return walk.driver.current_url


def report_page(url: str, valuation_id: str, token: str, work: Path, out: Path) -> Path:
    """The report's PDF from the service; its first page as a PNG (poppler's pdftoppm)."""
    import requests

    r = requests.get(f"{url}/v1/valuations/{valuation_id}/report", params={"format": "pdf"}, headers={"Authorization": f"Bearer {token}"}, timeout=600)
    r.raise_for_status()
    (work / "report.pdf").write_bytes(r.content)
    subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile", str(work / "report.pdf"), str(work / "report-page1")], check=True)
    target = out / "report-page1.png"
    shutil.copy(work / "report-page1.png", target)
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return target


def main() -> int:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default=None, help="a demo output folder (with demo_application.yaml); default: run the demo first")
    parser.add_argument("--tracking-uri", default=None, help="the demo's MLflow tracking URI (default: a new one for a new demo)")
    parser.add_argument("--out", default=str(IMAGES), help="where the PNGs go (default docs/images)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ipvalue-screenshots-"))
    uri = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    demo = demo_folder(Path(args.demo).resolve() if args.demo else None, uri, work)
    app = yaml.safe_load((demo / "demo_application.yaml").read_text(encoding="utf-8"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    process, url, tokens = serve(work, uri, app.get("models") or {})
    driver = browser()
    try:
        walk = Walk(driver, url)
        decision_url = officer_walk(walk, demo, app, work, out, tokens["officer"])
        report_page(url, decision_url.rsplit("/", 1)[-1], tokens["officer"], work, out)
        walk.sign_in(tokens["reviewer"])
        walk.wait("queue-awaiting")
        walk.save(out / "reviewer-queue.png")
    finally:
        driver.quit()
        process.terminate()
        process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
