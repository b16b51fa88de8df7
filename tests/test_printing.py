"""Printing a page to PDF: which engine prints (``$IPVALUE_PDF_ENGINE``, ``$IPVALUE_CHROMIUM``),
Chromium's process kept in a private folder and killed whole on a time-out, clear errors when it
fails, and a hostile page (or hostile text in an application) that can neither run script nor
fetch anything, with either engine."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ipvalue.report import pdf_engine, pdf_unavailable, render_pdf, write_reports
from ipvalue.report.printing import (_STARTED, CHROMIUM_ENV, ENGINE_ENV, PdfPrintError, StartedChromium, chromium_started, find_chromium,
                                     print_with_chromium, with_inline_svg, with_print_policy)
from tests.conftest import NO_OTHER_APPLICATIONS, PDF_ENGINES, printing_with

pytestmark = pytest.mark.filterwarnings("ignore")

#: A stand-in for Chromium: records its arguments, its folder's mode and the page it was given,
#: then acts as $FAKE_MODE says (prints a PDF, fails, writes nothing or garbage, hangs with a child,
#: or fails only when asked to print in one process). Each run appends a line to $FAKE_LOG.runs.
FAKE_CHROMIUM = r"""#!/bin/sh
out=""; single=no
for a in "$@"; do case "$a" in --print-to-pdf=*) out="${a#--print-to-pdf=}";; --single-process) single=yes;; esac; done
printf '%s\n' "$@" > "$FAKE_LOG.args"
echo "single-process=$single" >> "$FAKE_LOG.runs"
stat -c %a "$(dirname "$out")" > "$FAKE_LOG.mode"
dirname "$out" > "$FAKE_LOG.folder"
cp "$(dirname "$out")/page.html" "$FAKE_LOG.page"
case "$FAKE_MODE" in
  ok) printf '%%PDF-1.4 fake' > "$out";;
  fail) echo "[1:1:ERROR:dbus/bus.cc:405] Failed to connect to the bus" >&2; echo "[1:1:FATAL:zygote_host_impl_linux.cc:127] No usable sandbox!" >&2; exit 21;;
  nopdf) exit 0;;
  garbage) printf 'hello' > "$out";;
  hang) sleep 300 & echo $! > "$FAKE_LOG.child"; sleep 300;;
  multi-only) if [ "$single" = yes ]; then echo "[1:1:FATAL:render_process_host_impl.cc] single process" >&2; exit 133; fi
              printf '%%PDF-1.4 fake' > "$out";;
esac
"""


@pytest.fixture
def fake_chromium(tmp_path, monkeypatch):
    script = tmp_path / "fake-chromium"
    script.write_text(FAKE_CHROMIUM)
    script.chmod(0o755)
    log = tmp_path / "log"
    monkeypatch.setenv(CHROMIUM_ENV, str(script))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_MODE", "ok")
    return script, log


# --- which engine prints ------------------------------------------------------------------------


def test_the_engine_is_chromium_where_found_else_weasyprint_or_as_chosen(fake_chromium, monkeypatch):
    script, _ = fake_chromium
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert find_chromium() == str(script) and pdf_engine() == "chromium"
    monkeypatch.setenv(ENGINE_ENV, "WeasyPrint")
    assert pdf_engine() == "weasyprint"
    monkeypatch.setenv(ENGINE_ENV, "chromium")
    assert pdf_engine() == "chromium"
    monkeypatch.delenv(CHROMIUM_ENV)
    monkeypatch.setenv("PATH", str(script.parent / "empty"))  # no chromium on PATH
    monkeypatch.setenv(ENGINE_ENV, "auto")
    assert find_chromium() is None and pdf_engine() == "weasyprint"
    monkeypatch.setenv(ENGINE_ENV, "chromium")
    assert re.match(r"IPVALUE_PDF_ENGINE=chromium but no Chromium was found .* Fix: install it", pdf_unavailable())


def test_a_bad_engine_setting_is_named_with_its_value_and_fix(fake_chromium, monkeypatch):
    monkeypatch.setenv(ENGINE_ENV, "pdfkit")
    message = "The 'IPVALUE_PDF_ENGINE' environment variable must be one of auto, chromium, weasyprint. Got 'pdfkit'. Fix: set it to"
    assert pdf_unavailable().startswith(message)
    with pytest.raises(PdfPrintError, match=re.escape(message)):
        render_pdf("<p>x</p>")
    monkeypatch.setenv(ENGINE_ENV, "chromium")
    monkeypatch.setenv(CHROMIUM_ENV, "/nowhere/chromium")
    assert pdf_unavailable().startswith("The 'IPVALUE_CHROMIUM' environment variable must name an executable Chromium. Got '/nowhere/chromium'")


def test_the_print_policy_comes_first_in_the_head():
    policy = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:;'
    page = with_print_policy('<!DOCTYPE html><html lang="zh-CN"><head lang="x"><meta charset="utf-8"><link rel="stylesheet" href="x.css"></head><body></body></html>')
    assert page.startswith('<!DOCTYPE html><html lang="zh-CN"><head lang="x">' + policy)
    assert with_print_policy("<!doctype html><p>x</p>").startswith("<!doctype html>" + policy)  # no <head>: the parser opens one for it
    assert with_print_policy("<p>x</p>").startswith(policy)


def test_svg_charts_are_drawn_inline_for_chromium_with_their_id_and_label():
    import base64

    svg = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg" width="10pt" height="5pt"><text>在用价值 P10</text></svg>'
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    page = f'<div class="chart"><img id="chart-a" alt="价值链 &amp; cap" src="{uri}"></div><img src="data:image/png;base64,iVBORw0KGgo=">'
    assert with_inline_svg(page) == ('<div class="chart"><svg id="chart-a" role="img" aria-label="价值链 &amp; cap" xmlns="http://www.w3.org/2000/svg" '
                                     'width="10pt" height="5pt"><text>在用价值 P10</text></svg></div><img src="data:image/png;base64,iVBORw0KGgo=">')
    broken = '<img id="b" src="data:image/svg+xml;base64,@@notbase64@@">'
    assert with_inline_svg(broken) == broken


# --- Chromium's process: private folder, flags, errors, time-out ----------------------------------


def test_chromium_prints_from_a_private_folder_removed_afterwards_with_the_page_locked_down(fake_chromium):
    script, log = fake_chromium
    assert print_with_chromium("<html><head><title>t</title></head><body>报告</body></html>", str(script)) == b"%PDF-1.4 fake"
    args = Path(f"{log}.args").read_text().splitlines()
    assert Path(f"{log}.mode").read_text().strip() == "700"
    folder = Path(Path(f"{log}.folder").read_text().strip())
    assert not folder.exists()  # removed afterwards
    assert f"--user-data-dir={folder / 'profile'}" in args and args[-1] == (folder / "page.html").as_uri()
    for flag in ("--headless", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--disable-extensions", "--no-pdf-header-footer"):
        assert flag in args, flag
    assert ("--no-sandbox" in args) == (os.geteuid() == 0)  # only where Chromium refuses to start otherwise
    assert Path(f"{log}.runs").read_text().splitlines() == ["single-process=yes"]  # one run, in one process
    assert Path(f"{log}.page").read_text().startswith('<html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\';')


@pytest.mark.parametrize("mode, says", [("fail", r"failed to print the PDF \(exit code 21, no PDF written\): \[1:1:FATAL:zygote_host_impl_linux.cc:127\] No usable sandbox!\. "
                                                  r"Fix: check that it runs"),
                                        ("nopdf", r"failed to print the PDF \(exit code 0, no PDF written\)\. Fix:"),
                                        ("garbage", r"failed to print the PDF \(exit code 0, not a PDF\)\. Fix:")])
def test_a_chromium_failure_is_an_error_naming_what_failed_and_the_fix(fake_chromium, monkeypatch, mode, says):
    script, log = fake_chromium
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(PdfPrintError, match=rf"^Chromium \({re.escape(str(script))}\) {says}") as caught:
        print_with_chromium("<p>x</p>", str(script))
    assert "dbus" not in str(caught.value) and "IPVALUE_PDF_ENGINE=weasyprint" in str(caught.value)
    assert not Path(Path(f"{log}.folder").read_text().strip()).exists()
    assert Path(f"{log}.runs").read_text().splitlines() == ["single-process=yes", "single-process=no"]  # tried both ways


def test_a_chromium_that_cannot_print_in_one_process_prints_with_its_usual_processes(fake_chromium, monkeypatch):
    script, log = fake_chromium
    monkeypatch.setenv("FAKE_MODE", "multi-only")
    assert print_with_chromium("<p>x</p>", str(script)) == b"%PDF-1.4 fake"
    assert Path(f"{log}.runs").read_text().splitlines() == ["single-process=yes", "single-process=no"]
    assert not Path(Path(f"{log}.folder").read_text().strip()).exists()


def test_a_hung_chromium_is_killed_with_its_children_and_its_folder_removed(fake_chromium, monkeypatch):
    script, log = fake_chromium
    monkeypatch.setenv("FAKE_MODE", "hang")
    started = time.monotonic()
    with pytest.raises(PdfPrintError, match=r"did not print the PDF within 2 s and was stopped\. Fix: retry when the machine is less busy"):
        print_with_chromium("<p>x</p>", str(script), timeout=2)
    assert time.monotonic() - started < 60
    assert Path(f"{log}.runs").read_text().splitlines() == ["single-process=yes"]  # a time-out is not retried
    child = int(Path(f"{log}.child").read_text())
    for _ in range(100):  # the child (reparented when its parent was killed) is gone or a zombie about to be reaped
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        pytest.fail(f"Chromium's child process {child} outlived the time-out")
    assert not Path(Path(f"{log}.folder").read_text().strip()).exists()


@pytest.mark.slow
def test_a_failing_chromium_falls_back_to_weasyprint_unless_chromium_was_chosen(fake_chromium, monkeypatch, caplog):
    from ipvalue.report.printing import _weasyprint_unusable

    if _weasyprint_unusable():
        pytest.skip(_weasyprint_unusable())
    monkeypatch.setenv("FAKE_MODE", "fail")
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    pdf = render_pdf("<p>评估报告</p>")
    assert pdf.startswith(b"%PDF") and b"fake" not in pdf
    assert "No usable sandbox!. Fix: check that it runs" in caplog.text and "Printing it with WeasyPrint instead." in caplog.text
    monkeypatch.setenv(ENGINE_ENV, "chromium")
    with pytest.raises(PdfPrintError, match="No usable sandbox"):
        render_pdf("<p>评估报告</p>")


# --- a hostile page cannot run script or fetch anything, with either engine ------------------------


@pytest.fixture
def listener():
    """An HTTP server on loopback that records every request it gets (and would serve a stylesheet)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b'body::after { content: "FETCHED" }')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _text(pdf: bytes, folder: Path) -> str:
    (folder / "out.pdf").write_bytes(pdf)
    return subprocess.run(["pdftotext", str(folder / "out.pdf"), "-"], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.parametrize("engine", [*PDF_ENGINES, "chromium started ahead"])
def test_a_hostile_page_can_neither_run_script_nor_fetch_anything(engine, listener, tmp_path, caplog):
    """Raw HTML as if escaping had failed: script, images, stylesheets, frames and objects pointing
    at a server on loopback, a host name and a local file. Nothing runs, nothing is fetched."""
    host, hits = listener
    secret = tmp_path / "secret.css"
    secret.write_text('body::before { content: "LOCAL FILE READ" }')
    (tmp_path / "secret.txt").write_text("LOCAL FILE READ")
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="http://{host}/style.css"><link rel="stylesheet" href="{secret.as_uri()}">
<style>@import url("http://{host}/import.css"); p {{ background: url("http://{host}/bg.png") }}</style></head>
<body><p>评估报告 report body</p>
<script>document.body.insertAdjacentHTML("beforeend", "<p>SCRIPT RAN</p>"); fetch("http://{host}/fetch");</script>
<img src="http://{host}/img.png"><img src="http://localhost:{host.split(':')[1]}/by-name.png"><img src="http://example.com/remote.png">
<iframe src="http://{host}/frame"></iframe><iframe src="{(tmp_path / 'secret.txt').as_uri()}"></iframe>
<object data="{(tmp_path / 'secret.txt').as_uri()}"></object></body></html>"""
    with printing_with(engine.split()[0]), chromium_started() if engine == "chromium started ahead" else contextlib.nullcontext():
        started = _STARTED.get()
        with caplog.at_level("INFO", logger="ipvalue.report.printing"):
            pdf = render_pdf(page)
    assert (started is not None) == (engine == "chromium started ahead") and "instead" not in caplog.text
    text = _text(pdf, tmp_path)
    assert pdf.startswith(b"%PDF") and "评估报告" in text
    assert hits == []
    assert "SCRIPT RAN" not in text and "FETCHED" not in text and "LOCAL FILE READ" not in text


@pytest.mark.slow
@pytest.mark.parametrize("engine", PDF_ENGINES)
def test_hostile_text_in_an_application_prints_as_text(engine, listener, tmp_path):
    """An officer's override reason carrying markup: the report prints it as the characters typed."""
    from ipvalue.lending import LoanApplication, value_application
    from tests.conftest import synthetic_application

    host, hits = listener
    reason = f'<script>document.body.innerHTML="RAN"+"SCRIPT"</script><img src="http://{host}/img.png">毛利低'
    raw = synthetic_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": reason, "officer": "张经理"}])
    result = value_application(LoanApplication.from_dict(raw), user="tester", applications=NO_OTHER_APPLICATIONS)
    with printing_with(engine):
        paths = write_reports(result, tmp_path, pdf=True)
    text = subprocess.run(["pdftotext", str(paths["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s", "", text)
    assert hits == [] and "RANSCRIPT" not in flat
    for typed in ("<script>", '"RAN"+"SCRIPT"</script>', "<img"):  # the markup, printed as the characters the officer typed
        assert typed in flat, typed


# --- a Chromium started before the page exists ---------------------------------------------------

REPORT_LIKE = ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>@page { size: A4; margin: 20mm } h1 { break-before: page }</style></head><body>"
               + "".join(f"<h1>第{i}节 Section {i}</h1><p>{'评估报告正文 report text. ' * 80}</p>" for i in range(1, 4)) + "</body></html>")


@pytest.mark.slow
def test_a_chromium_started_ahead_prints_the_pdf_a_one_off_print_gives(tmp_path, caplog):
    with printing_with("chromium"), caplog.at_level("INFO", logger="ipvalue.report.printing"):
        with chromium_started():
            started = _STARTED.get()
            assert started is not None and started.process.poll() is None and oct(started.folder.stat().st_mode)[-3:] == "700"
            ahead = render_pdf(REPORT_LIKE)
            assert _STARTED.get() is None  # one page per started browser
        one_off = render_pdf(REPORT_LIKE)
    assert started.process.poll() is not None and not started.folder.exists()  # stopped and removed
    assert "instead" not in caplog.text  # printed by the started browser, not by a fallback
    for name, pdf in (("ahead", ahead), ("one-off", one_off)):
        (tmp_path / f"{name}.pdf").write_bytes(pdf)
    pages = [subprocess.run(["pdftoppm", "-r", "30", "-gray", str(tmp_path / f"{name}.pdf")], capture_output=True, check=True).stdout for name in ("ahead", "one-off")]
    assert _text(ahead, tmp_path) == _text(one_off, tmp_path) and "第3节" in _text(ahead, tmp_path)
    assert pages[0] == pages[1]  # the same pixels
    assert ahead.count(b"/Outlines") >= 1 and b"/StructTreeRoot" in ahead  # bookmarks, tagged


@pytest.mark.slow
def test_a_started_chromium_that_died_leaves_the_print_to_a_one_off_chromium(tmp_path, caplog):
    with printing_with("chromium"):
        with chromium_started():
            started = _STARTED.get()
            os.killpg(started.process.pid, 9)
            started.process.wait()
            with caplog.at_level("INFO", logger="ipvalue.report.printing"):
                pdf = render_pdf(REPORT_LIKE)
    assert "第3节" in _text(pdf, tmp_path)
    assert "Printing it with a Chromium started for it instead" in caplog.text and not started.folder.exists()


def test_a_chromium_that_cannot_start_ahead_is_an_error_naming_it(tmp_path):
    with pytest.raises(PdfPrintError, match=r"^Chromium \(/no/such/chromium\) did not print the PDF|exited before printing"):
        started = StartedChromium("/no/such/chromium", timeout=20)
        try:
            started.print("<p>x</p>")
        finally:
            started.close()
