"""The 内部评估报告 as data: addressable sections that HTML, PDF and JSON render alike; the HTML is
self-contained and renders in Chromium with its key parts visible; the report reads as prose and
tables (no raw floats, Python reprs, codes or internal wording), its tables never break a number,
its charts carry Chinese labels, and a reader re-derives the loan cap from the PDF's text alone."""

import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from ipvalue.lending import LoanApplication, value_application
from ipvalue.report import Report, Section, format_cell, render_html, write_reports
from ipvalue.report.render import column_widths, layout_table
from ipvalue.report.sections import NUMERIC_KINDS
from ipvalue.report.textwidth import is_identifier, text_em
from ipvalue.terms import reader_source
from tests.conftest import NO_OTHER_APPLICATIONS, PDF_ENGINES, font_problems, pdf_font_problems, printing_with

pytestmark = pytest.mark.filterwarnings("ignore")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def valued(raw, user="tester"):
    return value_application(LoanApplication.from_dict(raw), user=user, applications=NO_OTHER_APPLICATIONS)


@pytest.fixture(scope="module")
def result():
    from tests.conftest import synthetic_application

    raw = synthetic_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业", "officer": "张经理"}])
    return valued(raw)


@pytest.fixture(scope="module")
def html(result):
    return render_html(result.report)


@pytest.fixture(scope="module", params=PDF_ENGINES)
def pdf(request, result, tmp_path_factory):
    """The report's PDF (written by write_reports) printed by each engine, and its text layer,
    read as a reader would: ``pdftotext`` in reading order and with the page layout kept."""
    with printing_with(request.param):
        path = write_reports(result, tmp_path_factory.mktemp(f"pdf-{request.param}"), pdf=True)["pdf"]
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    layout = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return path, text, layout


def sections_in(html: str) -> list[str]:
    return re.findall(r'<section id="section-([\w-]+)"', html)


def test_html_is_self_contained_and_bilingual(result, html):
    assert not re.search(r'(src|href)="https?://', html), "the report must not load anything from the network"
    charts = [c.id for s in result.report.sections for c in s.charts]
    assert html.count('src="data:image/svg+xml;base64,') == len(charts) >= 5
    for text in ("评估结论 <span class=\"en\">Conclusion", "市场价值", "准入检查 <span class=\"en\">Eligibility checks", "风险分担", "溯源", "产品毛利低于行业",
                 "价值链", "计算过程"):
        assert text in html, text
    assert "assumption_set_hash" in html and "input_hash" in html  # the provenance appendix names the record's fields


def test_the_json_report_has_every_section_the_html_has_in_the_same_order(result, tmp_path):
    paths = write_reports(result, tmp_path, pdf=False)
    payload = json.loads(paths["json"].read_text(encoding="utf-8"))
    html = paths["html"].read_text(encoding="utf-8")
    assert [s["id"] for s in payload["report"]["sections"]] == sections_in(html) == result.report.ids
    # the recorded JSON alone renders the same report (the service re-renders from the audit record)
    assert sections_in(render_html(payload)) == result.report.ids
    assert payload["summary"]["loan_cap_rmb"] == pytest.approx(result.summary["loan_cap_rmb"])
    assert len(payload["checks"]) == len(result.checks) and payload["overrides"][0]["officer"] == "张经理"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths["html"].name, paths["json"].name])


SECTIONS = ["summary", "purpose", "value-type", "valuation-date", "basis", "assumptions", "scope", "value-chain", "methods", "parameters",
            "method-income", "sensitivity", "economic-life", "disposal", "checks", "risk-sharing", "explanation", "overrides", "special-matters",
            "validity", "limits", "sign-off", "appendix-income", "appendix-disposal", "provenance"]
TITLES = ["评估结论", "评估目的", "价值类型及定义", "评估基准日", "评估依据", "评估假设", "评估对象与范围", "价值链", "评估方法选择及理由", "参数表",
          "收益法", "敏感性分析", "处置分析", "准入检查", "特别事项说明", "评估结论有效期及重估触发", "使用限制", "签署", "计算过程"]


def test_the_internal_report_has_its_sections_in_the_order_of_an_appraisal_report(result, html):
    assert result.report.ids == SECTIONS
    for title in TITLES:
        assert title in html, title
    for table in ("summary-table", "value-chain-table", "scope-table", "methods-table", "method-roles-table", "method-choice-table", "parameters-table",
                  "income-cash-flows-SYN-CN-T001", "disposal-parameters-table", "disposal-steps-SYN-APP-T1", "pledge-limit-table", "loan-cap-table",
                  "sensitivity-table", "signoff-table", "documents-table"):
        assert re.search(f'<table id="{table}"[ >]', html), table
    assert "SYN-PJBG-2026-002" in html  # the 评价报告 in the scope and document tables


def test_the_conclusion_is_one_sentence_naming_the_value_types_then_the_key_chart(result):
    summary = result.report.select("summary")
    zh, en = summary.paragraphs[0]
    s = result.summary
    assert zh.startswith("经评估，于评估基准日 2026年6月30日") and zh.count("。") == 1 and zh.endswith("。")
    assert "市场价值为人民币" in zh and "抵质押价值（处置视角第 10 百分位）" in zh and f"质押可贷上限为人民币 {s['loan_cap_rmb']:,.0f} 元" in zh
    assert "market value of RMB" in en and "collateral value (the disposal view at P10)" in en
    chart = summary.charts[0]
    assert chart.id == "chart-value-chain" and chart.series[0]["y"][-1] == s["requested_amount_rmb"] and chart.markers[0]["x"] == s["loan_cap_rmb"]


def test_the_report_is_addressable_like_a_card():
    report = Report("标题", "Title").add(Section("a", "甲", "A").text("中", "en"), Section("b", "乙", "B"))
    assert report.ids == ["a", "b"] and report.select("a").paragraphs == [("中", "en")]
    with pytest.raises(ValueError, match="already has a section 'a'"):
        report.add(Section("a", "甲", "A"))
    with pytest.raises(KeyError, match="No section 'c'"):
        report.select("c")
    assert Report.from_dict(json.loads(report.to_json())).ids == ["a", "b"]


@pytest.mark.parametrize("value, kind, text", [(1234567.891, "money", "¥1,234,568"), (0.0161456458, "percent", "1.61%"), (941921.8800984666, "money2", "¥941,921.88"),
                                               (None, "money", "—"), (float("nan"), "years", "—"), (7.44, "years", "7.4"), (True, "check", "通过 pass"),
                                               (3, "integer", "3"), (12.3456, "number", "12.35"), (8.008, "number", "8.01"), (14.0, "number", "14"),
                                               ("2026-06-30T00:00:00", "date", "2026-06-30"), (0.0161456458, "percent6", "1.614565%"),
                                               (0.92603412, "rate6", "0.926034"), (10.0234, "multiple", "10.02 倍"), (0.25, "percent1", "25.0%")])
def test_cells_read_as_numbers_people_read(value, kind, text):
    assert format_cell(value, kind) == text


def test_columns_are_never_narrower_than_their_widest_number_or_identifier():
    columns = [{"key": "patent_id", "label_zh": "专利", "label_en": "Patent", "kind": "text"},
               {"key": "reason", "label_zh": "理由", "label_en": "Reason", "kind": "text"},
               {"key": "value", "label_zh": "市场价值", "label_en": "Market value", "kind": "money2"}]
    cells = [["SYN-CN-0000335"], ["收益法（借款人财务报表支持收入预测），按市场参与者口径重述；" * 6], ["¥3,648,299.12"]]
    widths, dense = column_widths(columns, cells)
    assert not dense and sum(widths) == pytest.approx(100, abs=0.05)
    page_em = 186 / (7.5 * 25.4 / 72)  # the printed width in em of the tables' print size
    for width, text in ((widths[0], cells[0][0]), (widths[2], cells[2][0])):
        assert width / 100 * page_em >= text_em(text), text  # the identifier and the number fit on one line
    assert widths[1] > widths[0] and widths[1] > widths[2]  # the long text takes the room left
    # a crowded table: the identifier still gets its width, the many numbers theirs
    crowded = [columns[0]] + [{"key": f"v{i}", "label_zh": "金额", "label_en": "Amount", "kind": "money2"} for i in range(7)] + [columns[1]]
    widths, dense = column_widths(crowded, [cells[0]] + [["¥13,648,299.12"]] * 7 + [cells[1]])
    room = 186 / ((6.5 if dense else 7.5) * 25.4 / 72)
    assert widths[0] / 100 * room >= text_em(cells[0][0]) and all(w / 100 * room >= text_em("¥13,648,299.12") for w in widths[1:8])
    laid = layout_table({"id": "t", "columns": columns, "rows": [{"patent_id": "SYN-CN-0000335", "reason": "文字", "value": 1.0}]})
    assert laid["body"][0][0] == ("SYN-CN-0000335", "nw") and laid["body"][0][2] == ("¥1.00", "num") and "keep" in laid["classes"]


def test_assumption_sources_read_without_pointers_to_internal_documents():
    assert reader_source('pledge rates about 30 % (经济日报, 2021-01; DOMAIN.md) imply; P10 (issue 13: "a stated quantile (e.g. P10)"); '
                         "see remaining_life_buffer_years") == "pledge rates about 30 % (经济日报, 2021-01) imply; P10; see remaining life buffer years"
    assert reader_source("default to calibrate: bank data").startswith("待校准 default to calibrate")


def test_special_matters_name_the_co_owner_and_the_sign_off_block_the_preparer():
    from tests.conftest import synthetic_application

    raw = synthetic_application()
    raw["patents"]["records"][0]["applicants"] = raw["borrower"] + ";合成示例理工大学"
    raw["documents"].append({"patent_id": "SYN-CN-T001", "kind": "co_owner_consent", "co_owner": "合成示例理工大学", "reference": "SYN-同意书-001"})
    html = render_html(valued(raw, user="王评估").report)
    special = html[html.index('id="section-special-matters"'):html.index('id="section-validity"')]
    assert "合成示例理工大学" in special and "专利法第14条" in special
    signoff = html[html.index('id="section-sign-off"'):]
    assert "王评估" in signoff


# --- the report reads as prose and tables, not as code ------------------------------------------


class _Text(HTMLParser):
    """The text a reader sees in the HTML, by section (the image alt texts included)."""

    def __init__(self):
        super().__init__()
        self.parts, self.section, self.skip = {}, "head", 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "script", "title"):
            self.skip += 1
        if tag == "section":
            self.section = attrs.get("id", "").removeprefix("section-")
        if tag == "img":
            self.parts.setdefault(self.section, []).append(attrs.get("alt", ""))

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.parts.setdefault(self.section, []).append(data.strip())


def reader_text(html: str) -> dict[str, str]:
    parser = _Text()
    parser.feed(html)
    return {k: "\n".join(v) for k, v in parser.parts.items()}


def svg_texts(html: str) -> list[str]:
    """The text of every embedded chart (SVG keeps its labels as text)."""
    return ["\n".join(re.findall(r"<text[^>]*>([^<]*)</text>", base64.b64decode(uri).decode("utf-8")))
            for uri in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


#: A raw float (more than 4 decimals; the 计算过程 appendix prints up to 6 so that a reader
#: re-derives the figures to the yuan), a Python repr, a code where words are due, internal wording.
RAW_FLOAT, APPENDIX_RAW_FLOAT = re.compile(r"\d\.\d{5,}"), re.compile(r"\d\.\d{7,}")
PYTHON_REPR = re.compile(r"\{'|'\}|\['|'\]|\bnan\b|\bNaN\b|\bNone\b|\bTrue\b|\bFalse\b|Timestamp\(|dtype|np\.float")
CODE = re.compile(r"\b[a-z]{2,}(?:_[a-z0-9]{2,})+\b")  # value_in_use, in_force, utility_model, cross_check (not S_t or weight_t)
INTERNAL = re.compile(r"\bissue\b|\.md\b|DOMAIN", re.IGNORECASE)


def prose_problems(text: str, *, appendix: bool) -> list[str]:
    problems = [f"raw float {m.group(0)!r}" for m in (APPENDIX_RAW_FLOAT if appendix else RAW_FLOAT).finditer(text)]
    problems += [f"Python repr {m.group(0)!r}" for m in PYTHON_REPR.finditer(text)]
    problems += [f"code {m.group(0)!r}" for m in CODE.finditer(text)]
    problems += [f"internal wording {m.group(0)!r}" for m in INTERNAL.finditer(text)]
    return problems


def html_problems(html: str) -> dict[str, list[str]]:
    text = reader_text(html)
    found = {sid: prose_problems(t, appendix=sid.startswith("appendix")) for sid, t in text.items() if sid != "provenance"}
    return {sid: p for sid, p in found.items() if p}


def test_the_html_reads_as_prose_and_tables_not_code(result, html):
    assert html_problems(html) == {}
    for text in svg_texts(html):
        assert prose_problems(text, appendix=False) == [], text


@pytest.mark.slow
def test_the_pdf_text_layer_reads_as_prose_and_tables_not_code(pdf):
    _, text, _ = pdf
    body, _, appendix = text.partition("附录：计算过程")
    appendix = appendix.split("溯源")[0]  # the provenance appendix names the record's fields and holds hashes
    assert prose_problems(body, appendix=False) == []
    assert prose_problems(appendix, appendix=True) == []


def test_the_scans_catch_what_a_reader_must_not_see(result, html):
    """The scans are real: each kind of leak is found (the checks above would fail on it)."""
    leaks = {"raw float": "941921.8800984666", "Python repr": "{'income': 3}", "code": "value_in_use", "internal wording": "issue 13 (DOMAIN.md)"}
    for kind, leak in leaks.items():
        leaked = html.replace("<p class=\"zh\">经评估", f"<p class=\"zh\">{leak} 经评估", 1)
        assert any(kind in p for p in html_problems(leaked).get("summary", [])), kind
    assert prose_problems("计算过程 0.926034", appendix=True) == [] and prose_problems("0.926034", appendix=False)


# --- tables: numbers whole, charts with Chinese labels -------------------------------------------


@pytest.mark.slow
def test_no_table_cell_breaks_a_number_or_a_word_in_the_pdf(result, pdf):
    """Every figure of every table (and every identifier and English word of its text cells)
    appears whole in the PDF's text layer at least as often as the tables hold it: a figure
    wrapped inside its cell ("3,648,29 / 9") or a word split ("inventi / on") would not."""
    _, text, _ = pdf
    words = re.findall(r"[A-Za-z]{4,}", text)
    figures, identifiers, english = {}, {}, {}
    for sec in result.report.to_dict()["sections"]:
        for table in sec["tables"]:
            for row in table["rows"]:
                for column in table["columns"]:
                    cell = format_cell(row.get(column["key"]), column.get("kind", "text"))
                    if column.get("kind") in NUMERIC_KINDS and cell != "—":
                        figures[cell] = figures.get(cell, 0) + 1
                    elif column.get("kind", "text") == "text":
                        for token in cell.split():
                            if is_identifier(token):
                                identifiers[token] = identifiers.get(token, 0) + 1
                        for word in re.findall(r"[A-Za-z]{4,}", cell):
                            english[word] = english.get(word, 0) + 1
    assert len(figures) > 100 and any(f.startswith("¥") for f in figures)
    broken = {f: n for f, n in {**figures, **identifiers}.items() if text.count(f) < n}
    assert broken == {}
    split = {w: n for w, n in english.items() if words.count(w) < n}
    assert split == {}


@pytest.mark.slow
def test_charts_drawn_by_the_helper_process_are_those_drawn_in_process(result, html, monkeypatch):
    from ipvalue.report import drawing, figures

    with drawing.charts_drawn_aside():
        helper = drawing._HELPER.get()
        monkeypatch.setattr(figures, "draw_chart", lambda chart: pytest.fail("drawn in this process, not by the helper"))
        assert render_html(result.report) == html  # the same bytes, the figures drawn by the helper
    assert helper.returncode == 0


@pytest.mark.parametrize("helper", [("/bin/false",), (sys.executable, "-c", "print('not json')"), (sys.executable, "-c", "print('{\"uris\": [1]}')"),
                                    (sys.executable, "-c", "import time; time.sleep(120)"), ("/no/such/python",)])
def test_a_helper_that_fails_leaves_the_charts_to_this_process(result, html, monkeypatch, helper):
    from ipvalue.report import drawing

    monkeypatch.setattr(drawing, "HELPER_COMMAND", helper)
    monkeypatch.setattr(drawing, "HELPER_TIMEOUT_S", 3.0)
    with drawing.charts_drawn_aside():
        started = drawing._HELPER.get()
        assert render_html(result.report) == html
    assert started is None or started.poll() is not None  # none left running


def test_every_chart_is_present_with_chinese_labels(result, html, pdf):
    cjk = re.compile(r"[\u4e00-\u9fff]")
    charts = [c for s in result.report.sections for c in s.charts]
    assert {c.id for c in charts} >= {"chart-value-chain", "chart-income-cash-flows", "chart-income-distribution", "chart-tornado", "chart-distribution"}
    texts = svg_texts(html)
    assert len(texts) == len(charts)
    for chart, drawn in zip(charts, texts):
        alt = re.search(rf'<img id="{chart.id}" alt="([^"]*)"', html).group(1)
        assert cjk.search(alt) and chart.title_zh in alt, chart.id
        assert chart.title_zh in drawn and cjk.search(chart.x_label_zh or chart.title_zh), chart.id  # the chart's own labels, drawn as text
        for marker in chart.markers:
            assert marker["label_zh"] in drawn, (chart.id, marker)
    _, text, _ = pdf
    flat = re.sub(r"\s", "", text)
    for chart in charts:
        assert re.sub(r"\s", "", chart.title_zh) in flat, chart.id  # in the PDF's text layer, not as boxes


# --- Chromium and the PDF -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_chromium_with_key_elements_visible(result, tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        selenium_missing = True
    else:
        selenium_missing = False
    if not (CHROMIUM and CHROMEDRIVER) or selenium_missing:
        message = "Chromium check skipped: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and the test extra (selenium)"
        if os.environ.get("IPVALUE_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    path = write_reports(result, tmp_path, pdf=False)["html"]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(path.resolve().as_uri())
        for element_id in ("decision", "summary-table", "value-chain-table", "methods-table", "checks-table", "risk-table",
                           "points-table", "overrides-table", "income-cash-flows-SYN-CN-T001", "provenance-table"):
            element = driver.find_element(By.ID, element_id)
            element.location_once_scrolled_into_view  # noqa: B018 - scroll it into view
            assert element.is_displayed(), f"#{element_id} is not visible"
        assert "eligible" in driver.find_element(By.ID, "decision").text
        for chart in [c.id for s in result.report.sections for c in s.charts]:
            img = driver.find_element(By.ID, chart)
            img.location_once_scrolled_into_view  # noqa: B018
            assert img.is_displayed() and driver.execute_script("return arguments[0].naturalWidth", img) > 100, chart
        # numbers stay on one line in their cells on screen too
        heights = driver.execute_script("return Array.from(document.querySelectorAll('#summary-table td.num')).map(td => td.getClientRects().length)")
        assert heights and set(heights) == {1}
        # Chinese text is drawn with a CJK face, not boxes: the platform font Chromium used for a title
        driver.execute_cdp_cmd("DOM.enable", {})
        driver.execute_cdp_cmd("CSS.enable", {})
        root = driver.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
        for selector in ("#section-purpose h2", "#section-scope td"):
            node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
            fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            assert any("CJK" in f["familyName"] for f in fonts), f"{selector} rendered with {fonts}: install fonts-noto-cjk"
        driver.save_screenshot(str(tmp_path / "report.png"))  # kept out of the repository
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_pdf_embeds_a_cjk_font_and_its_text_layer_holds_the_chinese_titles(pdf):
    path, text, _ = pdf
    assert path.read_bytes().startswith(b"%PDF")
    assert pdf_font_problems(path) == []  # every font embedded with its Unicode map, a CJK face among them
    flat = re.sub(r"\s", "", text)
    for title in TITLES:
        assert title in flat, title
    assert "计算过程" in flat and "收益法逐年现金流" in flat  # the appendix a reader re-derives the cap from


@pytest.mark.slow
def test_the_pdf_has_a_bookmark_per_section_and_prints_its_shading(result, pdf):
    """A reader jumps to each section from the PDF's bookmarks (as WeasyPrint writes them from the
    headings), and the shaded decision box and table headings print (Chromium drops backgrounds
    unless told otherwise)."""
    path, _, _ = pdf
    xml = subprocess.run(["pdftohtml", "-xml", "-i", "-stdout", str(path)], capture_output=True, text=True, check=True).stdout
    outline = re.sub(r"\s", "", " ".join(re.findall(r"<item[^>]*>(.*?)</item>", xml)))
    for section in result.report.sections:
        assert re.sub(r"\s", "", section.title_zh) in outline, section.id
    page = subprocess.run(["pdftoppm", "-r", "30", "-f", "1", "-l", "1", "-singlefile", str(path)], capture_output=True, check=True).stdout
    pixels = page[page.index(b"255\n") + 4:]  # P6 header: magic, width height, maxval
    colours = [tuple(pixels[i:i + 3]) for i in range(0, len(pixels) - 2, 3)]

    def area(fill):  # pixels of that colour on the page at 30 dpi (a heading row of a table is some 600)
        return sum(all(abs(c - f) <= 2 for c, f in zip(colour, fill)) for colour in colours)

    fill = (0xe6, 0xf4, 0xea) if result.report.meta["eligible"] else (0xfd, 0xec, 0xea)  # the decision box: green, or red
    assert area(fill) > 200, "the decision box's shading is not printed"
    assert area((0xee, 0xf3, 0xf8)) > 600, "the table headings' shading is not printed"


def test_the_font_check_finds_a_font_not_embedded_unmapped_or_not_cjk():
    """The font check the PDF tests rely on is real: each fault is found."""
    head = "name                                 type              encoding         emb sub uni object ID\n" + "-" * 90 + "\n"
    weasy = head + "ABCDEF+NotoSansCJKsc-Regular         CID Type 0C       Identity-H       yes yes yes      7  0\n"
    chromium = head + "[none]                               Type 3            Custom           yes no  yes      4  0\n"
    assert font_problems(weasy) == [] and font_problems(chromium, b"/FontName /AAAAAA+NotoSansCJKsc-Regular") == []
    assert font_problems(head + "NotoSansCJKsc-Regular                CID Type 0C       Identity-H       no  no  yes      7  0\n") == ["not embedded: NotoSansCJKsc-Regular CID Type 0C Identity-H"]
    assert font_problems(head + "ABCDEF+NotoSansCJKsc-Regular         CID Type 0C       Identity-H       yes yes no       7  0\n")[0].startswith("no Unicode map")
    assert font_problems(chromium, b"/FontName /AAAAAA+DejaVuSans")[0].startswith("no CJK face")
    assert font_problems(head) == ["no font at all"]


# --- a reader re-derives the loan cap from the PDF alone -----------------------------------------

MONEY = r"¥(-?[\d,]+\.\d\d)"


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def rederive_loan_cap(layout: str) -> dict:
    """The loan cap recomputed by hand from the PDF's text (``pdftotext -layout``), as a reader
    would, importing nothing from ipvalue:

    1. each patent's market value, from the method the value chain names: the income approach's
       market-participant cash flows year by year, revenue × sharing rate × the year's weight W_t ×
       (1 − tax rate), discounted at the printed rate (end-of-year or mid-year, as the
       appendix says) and summed; or the market approach's median of the comparables' prices ×
       kind, life and score factors;
    2. the pledge-rate limit: Σ market value × pledge rate (the rates of the pledge-limit table);
    3. the realisation factor from the disposal parameters: (1 − discount − cost) ÷ (1 + holding)^years;
    4. each package's collateral value: min(factor × its market-value scenarios at the cap's
       quantile, factor × its market value); the cap: min(Σ collateral values, Σ pledge-rate limits).

    Returns the recomputed figures and the ones the PDF prints, to compare.
    """
    mid = "(t − 0.5)" in layout or "(t − 0.5)" in layout.replace("\u2212", "−")
    occurrences = [(m.start(), m.group(1)) for m in re.finditer(r"^\f?(\S+)：(?:基期收入|逐年收入)", layout, re.M)]  # repeated on each page a table runs to
    captions = {pid: pos for pos, pid in reversed(occurrences)}  # the first of each
    taxes = {pid: float(re.search(r"市场参与者\s*(\d+\.\d+)%", layout[pos:pos + 600]).group(1)) / 100 for pid, pos in captions.items()}
    rates = {pid: float(re.search(r"折现率\s*(\d+\.\d+)%", layout[pos:pos + 800]).group(1)) / 100 for pid, pos in captions.items()}
    # a year's row: the year, the revenue, the weight's parts, W_t and the discount factor (six decimals each), then
    # each basis's sharing rate, cash flow and present value
    row = re.compile(rf"^\s*(\d+)\s+{MONEY}((?:\s+\d\.\d{{6}}){{3,6}})\s+(\d+\.\d{{6}})%\s+{MONEY}\s+{MONEY}\s+(\d+\.\d{{6}})%\s+{MONEY}\s+{MONEY}\s*$", re.M)
    positions = sorted(occurrences)
    flows: dict[str, dict[int, float]] = {pid: {} for pid in captions}
    printed_pv: dict[str, dict[int, float]] = {pid: {} for pid in captions}
    for m in row.finditer(layout):
        pid = [p for pos, p in positions if pos < m.start()][-1]  # the caption above (repeated on each page the table runs to)
        t = int(m.group(1))
        revenue, rates6, sharing = _money(m.group(2)), [float(v) for v in m.group(3).split()], float(m.group(7)) / 100
        weight = rates6[-2]  # W_t; the last column before the bases is the discount factor, which the reader recomputes from the rate
        cash_flow = revenue * sharing * weight * (1 - taxes[pid])
        flows[pid][t] = cash_flow / (1 + rates[pid]) ** (t - (0.5 if mid else 0.0))
        printed_pv[pid][t] = _money(m.group(9))
    income_value = {pid: sum(v.values()) for pid, v in flows.items()}
    # the market approach: each patent's median adjusted comparable price, re-adjusted by hand
    adjusted: dict[str, list[float]] = {}
    comparables = layout[layout.index("计算过程：市场法可比交易及调整"):] if "计算过程：市场法可比交易及调整" in layout else ""
    for m in re.finditer(rf"^\s*(\S+)\s+\S+\s+\d{{4}}-\d\d-\d\d\s+.*?{MONEY}\s+(\d\.\d{{6}})\s+(\d\.\d{{6}})\s+(\d\.\d{{6}})\s+{MONEY}\s*$", comparables, re.M):
        price, kind, life, score = _money(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5))
        adjusted.setdefault(m.group(1), []).append(price * kind * life * score)
    # each patent's basis, as the value chain table names it
    chain = layout[layout.index("价值链："):layout.index("评估方法选择及理由")]
    basis = {pid: ("market" if re.search(rf"^\s*{re.escape(pid)}\s.*市场法", chain, re.M) else "income") for pid in income_value}
    market_value = {pid: statistics.median(adjusted[pid]) if basis[pid] == "market" else income_value[pid] for pid in income_value}
    pledge = {}
    for m in re.finditer(rf"^\s*(\S+)\s+(\S+)\s+\S+(?: \S+)*?\s+{MONEY}\s+(\d+\.\d+)%\s+{MONEY}\s*$", layout[layout.index("质押率上限 = 市场价值 × 质押率"):], re.M):
        pledge[m.group(1)] = (m.group(2), _money(m.group(3)), float(m.group(4)) / 100, _money(m.group(5)))
        if set(pledge) == set(market_value):
            break
    params = layout[layout.index("参数表"):]
    discount = float(re.search(r"强制变现折扣 forced-sale discount\s+(\d+\.\d+)%", params).group(1)) / 100
    cost = float(re.search(r"处置费用率 disposal cost rate\s+(\d+\.\d+)%", params).group(1)) / 100
    holding = float(re.search(r"持有成本（年） holding rate \(per year\)\s+(\d+\.\d+)%", params).group(1)) / 100
    years = float(re.search(r"处置年限 years to dispose\s+([\d.]+) 年", params).group(1))
    quantile = re.search(r"可贷上限分位数 quantile of the cap\s+(P\d+)", params).group(1)
    factor = (1 - discount - cost) / (1 + holding) ** years
    collateral, limits = 0.0, 0.0
    packages = {pkg for pkg, *_ in pledge.values()}
    for pkg in packages:
        block = layout[layout.index(f"专利包 {pkg} package {pkg}"):]
        scenarios = _money(re.search(rf"^\s*{quantile}\s+{MONEY}", block, re.M).group(1))
        package_value = sum(market_value[pid] for pid, (p, *_) in pledge.items() if p == pkg)
        collateral += min(factor * scenarios, factor * package_value)
    limits = sum(market_value[pid] * rate for pid, (_, _, rate, _) in pledge.items())
    cap = min(collateral, limits)
    printed_cap = _money(re.search(rf"质押可贷上限 = 二者较低者 loan cap = the lower of the two\s+{MONEY}", layout).group(1))
    conclusion_cap = float(re.search(r"质押可贷上限为人民币\s*([\d,]+)\s*元", layout).group(1).replace(",", ""))
    return {"years": {pid: sorted(v) for pid, v in flows.items()}, "basis": basis, "market_value": market_value, "printed_market_value": {pid: v[1] for pid, v in pledge.items()},
            "printed_present_values": {pid: sum(v.values()) for pid, v in printed_pv.items()}, "factor": factor,
            "collateral": collateral, "pledge_limit": limits, "cap": cap, "printed_cap": printed_cap, "conclusion_cap": conclusion_cap}


@pytest.mark.slow
def test_a_reader_re_derives_the_loan_cap_from_the_pdf_text_alone_within_one_yuan(result, pdf):
    _, _, layout = pdf
    r = rederive_loan_cap(layout)
    assert set(r["market_value"]) == set(result.patents["patent_id"])
    assert all(years == list(range(1, len(years) + 1)) and len(years) >= 5 for years in r["years"].values()), r["years"]  # every year, once
    for pid, value in r["market_value"].items():
        assert value == pytest.approx(r["printed_market_value"][pid], abs=1.0), pid  # the cash flows re-derive each market value
        assert r["printed_present_values"][pid] == pytest.approx(r["printed_market_value"][pid], abs=0.5), pid
    assert abs(r["cap"] - r["printed_cap"]) <= 1.0 and abs(r["cap"] - result.summary["loan_cap_rmb"]) <= 1.0
    assert abs(r["conclusion_cap"] - result.summary["loan_cap_rmb"]) <= 0.5
    assert r["pledge_limit"] == pytest.approx(result.summary["pledge_value_rmb"], abs=1.0)
    assert r["collateral"] == pytest.approx(result.summary["collateral_value_rmb"], abs=1.0)


# --- a complete report: every method, both models ------------------------------------------------


@pytest.fixture(scope="module")
def full_result(registry, tmp_path_factory):
    """A valuation with every section: comparables (the market approach), an R&D cost (the cost
    approach), the registered renewal model (S_t, reasons) and value model."""
    import pandas as pd

    from tests.conftest import synthetic_application

    folder = tmp_path_factory.mktemp("full")
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-10-31", "kind": kind, "price_rmb": p, "patent_type": t, "ipc_main": "G06F 16/00",
                   "remaining_life_years": 10.0, "licence_years": 5.0 if kind.startswith("licence") else None}
                  for i, (p, t, kind) in enumerate([(9e5, "invention", "transfer"), (1.1e6, "invention", "licence_fixed_fee"), (1.3e6, "invention", "transfer"),
                                                    (3e5, "utility_model", "transfer"), (4e5, "utility_model", "auction"), (5e5, "utility_model", "transfer")])]
                 ).to_csv(folder / "comparables.csv", index=False)
    raw = synthetic_application(comparables="comparables.csv", rd_cost={"rmb": 3_000_000, "year": 2021},
                                models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    return value_application(LoanApplication.from_dict(raw, base_dir=folder), tracking_uri=registry[1], user="tester", applications=NO_OTHER_APPLICATIONS)


@pytest.fixture(scope="module", params=PDF_ENGINES)
def full(request, full_result, tmp_path_factory):
    """The complete report, its HTML and its PDF's text printed by each engine."""
    with printing_with(request.param):
        path = write_reports(full_result, tmp_path_factory.mktemp(f"full-{request.param}"), pdf=True)["pdf"]
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    layout = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return full_result, render_html(full_result.report), text, layout


@pytest.mark.slow
def test_a_complete_report_reads_well_shows_every_chart_in_chinese_and_re_derives_its_cap(full):
    r, html, text, layout = full
    assert {"method-market", "method-cost", "method-ml", "appendix-market"} <= set(r.report.ids)
    assert html_problems(html) == {} and all(prose_problems(t, appendix=False) == [] for t in svg_texts(html))
    body, _, appendix = text.partition("附录：计算过程")
    assert prose_problems(body, appendix=False) == [] and prose_problems(appendix.split("溯源")[0], appendix=True) == []
    charts = {c.id: c for s in r.report.sections for c in s.charts}
    assert {"chart-value-chain", "chart-survival", "chart-reasons", "chart-distribution", "chart-tornado"} <= set(charts)
    flat = re.sub(r"\s", "", text)
    for chart in charts.values():
        assert re.search(r"[\u4e00-\u9fff]", chart.title_zh) and re.sub(r"\s", "", chart.title_zh) in flat, chart.id
    derived = rederive_loan_cap(layout)
    assert derived["basis"] == dict(zip(r.patents["patent_id"], r.patents["basis_method"]))  # here the market approach passes its tests
    for pid, value in derived["market_value"].items():
        assert value == pytest.approx(derived["printed_market_value"][pid], abs=1.0), (pid, derived["basis"][pid])
    assert abs(derived["cap"] - r.summary["loan_cap_rmb"]) <= 1.0 and abs(derived["printed_cap"] - r.summary["loan_cap_rmb"]) <= 0.01


def test_a_table_of_columns_is_the_table_of_the_same_frame():
    import numpy as np
    import pandas as pd

    from ipvalue.report.sections import Column

    columns = [Column("name", "名称", "Name"), Column("value_rmb", "价值", "Value", "money"), Column("absent", "无", "Absent")]
    data = {"name": ["a", "b", "合计 total"], "value_rmb": [1.5, np.nan, 3.0], "extra": [1, 2, 3]}
    by_frame, by_columns = Section("s", "s", "s"), Section("s", "s", "s")
    by_frame.table("t", pd.DataFrame(data), columns, caption_zh="表", caption_en="table")
    by_columns.table("t", data, columns, caption_zh="表", caption_en="table")
    assert by_columns.to_dict() == by_frame.to_dict()
    assert by_columns.tables[0].rows == [{"name": "a", "value_rmb": 1.5}, {"name": "b", "value_rmb": None}, {"name": "合计 total", "value_rmb": 3.0}]
    empty = Section("s", "s", "s").table("t", {"extra": [1, 2]}, columns)
    assert empty.tables[0].rows == [{}, {}] and empty.tables[0].columns == []
