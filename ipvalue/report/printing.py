"""Printing a self-contained HTML page (the 内部评估报告, a model card, the back-test report) to PDF.

Two engines print the same HTML:

- **Chromium** (headless, its own ``--print-to-pdf``), used when this machine has one: about twice
  as fast as WeasyPrint on the report (``benchmarks/report.py``). Its CJK glyphs are embedded as
  Type 3 fonts (Skia does not embed CFF-outline OpenType fonts such as Noto Sans CJK), with a
  Unicode map, so the text layer reads back.
- **WeasyPrint**, pure Python, used where no Chromium is found; it embeds a subset of the CJK font.

Which one prints: ``$IPVALUE_PDF_ENGINE`` = ``chromium``, ``weasyprint`` or ``auto`` (default:
Chromium when found, else WeasyPrint; if Chromium fails in ``auto``, WeasyPrint prints and a
warning says why). Chromium is looked for as ``$IPVALUE_CHROMIUM`` (a path or a command name),
else ``chromium``, ``chromium-browser``, ``google-chrome``, ``google-chrome-stable`` or
``chrome-headless-shell`` on ``PATH``.

The HTML is ours but carries users' text (escaped by the templates). Neither engine runs script
or fetches anything: Chromium prints a copy carrying a Content-Security-Policy that allows only
inline styles and ``data:`` images and fonts (no script, no network, no ``file:``), from a private
temporary folder (0700, removed afterwards, also on error or time-out) with a fresh profile, every
host name unresolvable and a dead proxy; WeasyPrint (which runs no script) is given a fetcher that
serves ``data:`` URIs only.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

#: The environment variable that chooses the engine: ``chromium``, ``weasyprint`` or ``auto``.
ENGINE_ENV = "IPVALUE_PDF_ENGINE"
#: The environment variable that names the Chromium to print with (a path or a command on PATH).
CHROMIUM_ENV = "IPVALUE_CHROMIUM"
ENGINES = ("auto", "chromium", "weasyprint")
#: Commands tried on PATH, in this order, when ``$IPVALUE_CHROMIUM`` is not set.
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome-headless-shell")
#: Seconds Chromium may take to print one document before its processes are killed (the
#: 18-page report takes about 2 s).
CHROMIUM_TIMEOUT_S = 120.0

#: What the printed page may load: inline styles, ``data:`` images and fonts; no script, no
#: frame, no network, no ``file:``, no form, no <base>.
PRINT_POLICY = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
                "base-uri 'none'; form-action 'none'")

#: Chromium's flags for printing. Each keeps the browser from doing anything but print the page.
CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-pdf-header-footer",              # the page's own @page margin boxes, not Chromium's date / URL header
    "--generate-pdf-document-outline",     # bookmarks from the headings, as WeasyPrint writes them (needs the tagged PDF)
    "--host-resolver-rules=MAP * ~NOTFOUND",  # every host, IP literals included, is unresolvable: nothing is fetched
    "--proxy-server=127.0.0.1:9",          # a second lock: anything that would go out goes to the discard port
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--disable-dev-shm-usage",             # containers often give /dev/shm 64 MB, too little for a long report
)


class PdfPrintError(RuntimeError):
    """The PDF could not be printed (the message names what failed and the fix)."""


# --- choosing the engine --------------------------------------------------------------------------


def requested_engine() -> str:
    """The engine ``$IPVALUE_PDF_ENGINE`` asks for: ``auto`` (default), ``chromium`` or ``weasyprint``.

    Raises
    ------
    ValueError
        The variable holds another value.
    """
    value = os.environ.get(ENGINE_ENV, "").strip().lower() or "auto"
    if value not in ENGINES:
        raise ValueError(f"The '{ENGINE_ENV}' environment variable must be one of {', '.join(ENGINES)}. Got {os.environ[ENGINE_ENV]!r}. "
                         f"Fix: set it to 'chromium' or 'weasyprint', or unset it to print with Chromium where this machine has one.")
    return value


def find_chromium() -> str | None:
    """The Chromium to print with: ``$IPVALUE_CHROMIUM`` (a path, or a command on PATH) when set,
    else the first of :data:`CHROMIUM_COMMANDS` on PATH; None when there is none.

    Raises
    ------
    ValueError
        ``$IPVALUE_CHROMIUM`` names no executable file.
    """
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        found = shutil.which(named)
        if not found:
            raise ValueError(f"The '{CHROMIUM_ENV}' environment variable must name an executable Chromium. Got {named!r}, which is not an "
                             f"executable file nor a command on PATH. Fix: give the full path of chromium (e.g. /usr/bin/chromium), or unset it.")
        return found
    return next((found for name in CHROMIUM_COMMANDS if (found := shutil.which(name))), None)


def pdf_engine() -> str:
    """The engine :func:`render_pdf` prints with on this machine now: ``chromium`` or ``weasyprint``.

    Raises
    ------
    ValueError
        ``$IPVALUE_PDF_ENGINE`` or ``$IPVALUE_CHROMIUM`` holds a value that cannot be used.
    """
    engine = requested_engine()
    if engine == "auto":
        return "chromium" if find_chromium() else "weasyprint"
    return engine


def pdf_unavailable() -> str | None:
    """Why this machine cannot print PDF, or None when it can: the chosen engine (Chromium, or
    WeasyPrint with its Pango libraries) or a CJK font is missing, or the engine's environment
    variables hold a value that cannot be used."""
    try:
        engine = pdf_engine()
    except ValueError as exc:
        return str(exc)
    try:
        chromium = find_chromium() if engine == "chromium" else None
    except ValueError as exc:
        return str(exc)
    if engine == "chromium" and not chromium:
        return (f"{ENGINE_ENV}=chromium but no Chromium was found ({', '.join(CHROMIUM_COMMANDS)} on PATH, or ${CHROMIUM_ENV}). "
                f"Fix: install it (Debian: apt-get install chromium), set {CHROMIUM_ENV} to its path, or set {ENGINE_ENV}=weasyprint.")
    if engine == "weasyprint" and (reason := _weasyprint_unusable()):
        return reason
    if not _cjk_fonts_installed():
        return ("No Chinese (CJK) font is installed: the PDF's Chinese text would print as boxes. "
                "Fix: install one (Debian: apt-get install fonts-noto-cjk).")
    return None


def prints_pdf(pdf: bool | None, what: str) -> bool:
    """Whether to print ``what`` as PDF: ``pdf`` when given; when None, whenever this machine can
    (else a warning says why it is skipped)."""
    if pdf is not None:
        return bool(pdf)
    reason = pdf_unavailable()
    if reason:
        logger.warning("PDF of %s not written: %s", what, reason)
    return reason is None


# --- printing -----------------------------------------------------------------------------------


def render_pdf(html: str) -> bytes:
    """``html`` (a self-contained page: images as ``data:`` URIs) printed as PDF by the engine
    :func:`pdf_engine` names, with the page's ``@page`` size, margins and margin boxes.

    Returns
    -------
    bytes
        The PDF (it starts with ``%PDF``).

    Raises
    ------
    PdfPrintError
        This machine cannot print it (:func:`pdf_unavailable` says why), or the engine failed;
        the message names what failed and the fix.
    """
    reason = pdf_unavailable()
    if reason:
        raise PdfPrintError(reason)
    if pdf_engine() == "weasyprint":
        return print_with_weasyprint(html)
    try:
        return print_with_chromium(html, find_chromium())
    except PdfPrintError as exc:
        if requested_engine() == "chromium" or _weasyprint_unusable():
            raise
        logger.warning("%s Printing it with WeasyPrint instead.", exc)
        return print_with_weasyprint(html)


def with_print_policy(html: str) -> str:
    """``html`` with :data:`PRINT_POLICY` as its first ``<head>`` element, before anything it
    could load."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{PRINT_POLICY}">'
    head = re.search(r"<head(\s[^>]*)?>", html, re.I)
    if head:
        return html[:head.end()] + meta + html[head.end():]
    doctype = re.match(r"\s*<!doctype[^>]*>", html, re.I)  # no <head>: the parser opens one for the <meta>
    at = doctype.end() if doctype else 0
    return html[:at] + meta + html[at:]


_SVG_IMAGE = re.compile(r"<img\b([^>]*?)\ssrc=\"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\"([^>]*)>", re.I)


def with_inline_svg(html: str) -> str:
    """``html`` with each SVG image given as a ``data:`` URI drawn inline instead (its ``id``,
    ``class`` and ``style`` kept, its ``alt`` as ``aria-label``).

    Chromium prints the text of an SVG *image* with a Unicode map rebuilt from the font alone: a
    character whose glyph the font shares with a compatibility form reads back as that form (用 as
    the Kangxi radical ⽤) and figures drop out of the text layer. Drawn inline, a chart's labels
    read back as they were written.
    """
    import base64
    import binascii

    def inline(match: re.Match) -> str:
        try:
            svg = base64.b64decode(match.group(2), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return match.group(0)
        start = svg.find("<svg")
        if start < 0:
            return match.group(0)
        attributes = dict(re.findall(r'\s(id|class|style|alt)="([^"]*)"', match.group(1) + " " + match.group(3)))
        label = attributes.pop("alt", None)
        extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
        extra += ' role="img"' + (f' aria-label="{label}"' if label is not None else "")
        return "<svg" + extra + svg[start + 4:]

    return _SVG_IMAGE.sub(inline, html)


def print_with_chromium(html: str, chromium: str, *, timeout: float = CHROMIUM_TIMEOUT_S) -> bytes:
    """``html`` printed by headless Chromium (``chromium``: its executable) under
    :data:`PRINT_POLICY`, in a private temporary folder removed afterwards.

    Raises
    ------
    PdfPrintError
        Chromium did not start, exited with an error, wrote no PDF, or took over ``timeout`` s
        (its process group is then killed).
    """
    folder = Path(tempfile.mkdtemp(prefix="ipvalue-pdf-"))  # mode 0700: only this user reads the page
    try:
        page, out = folder / "page.html", folder / "page.pdf"
        page.write_text(with_print_policy(with_inline_svg(html)), encoding="utf-8")
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'profile'}", f"--print-to-pdf={out}", page.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Chromium refuses to start as root with its sandbox on; only then is it turned off. The
            # page it prints is ours and can neither run script nor load anything (PRINT_POLICY).
            command.insert(1, "--no-sandbox")
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder,
                                       start_new_session=True)  # its own process group, killed whole on a time-out
        except OSError as exc:
            raise PdfPrintError(f"Chromium ({chromium}) could not be started to print the PDF: {exc}. "
                                f"Fix: check the installation, set {CHROMIUM_ENV} to a working Chromium, or set {ENGINE_ENV}=weasyprint.") from exc
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise PdfPrintError(f"Chromium ({chromium}) did not print the PDF within {timeout:.0f} s and was stopped. "
                                f"Fix: retry when the machine is less busy, or set {ENGINE_ENV}=weasyprint.") from None
        except BaseException:
            _kill_group(process)
            process.communicate()
            raise
        pdf = out.read_bytes() if out.is_file() else b""
        if process.returncode != 0 or not pdf.startswith(b"%PDF"):
            got = f"exit code {process.returncode}" + ("" if pdf else ", no PDF written") + (", not a PDF" if pdf and not pdf.startswith(b"%PDF") else "")
            raise PdfPrintError(f"Chromium ({chromium}) failed to print the PDF ({got}){_last_error(stderr)}. "
                                f"Fix: check that it runs (`{chromium} --headless --version`), set {CHROMIUM_ENV} to a working Chromium, "
                                f"or set {ENGINE_ENV}=weasyprint.")
        return pdf
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the process group Chromium leads (the browser and its renderers), before it is reaped."""
    if not hasattr(os, "killpg"):  # Windows: no process groups
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_error(stderr: bytes) -> str:
    """Chromium's last error lines, without its noise about D-Bus (absent in containers)."""
    lines = [line for line in (stderr or b"").decode("utf-8", "replace").splitlines() if line.strip() and "dbus" not in line.lower()]
    return f": {' | '.join(lines[-3:])[:600]}" if lines else ""


def print_with_weasyprint(html: str) -> bytes:
    """``html`` printed by WeasyPrint (the CJK font embedded as a subset); it fetches ``data:``
    URIs only (the page is self-contained) and runs no script."""
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    fetcher = weasyprint.URLFetcher(allowed_protocols=("data",), allow_redirects=False)
    return weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf(font_config=FontConfiguration())


def _weasyprint_unusable() -> str | None:
    try:
        import weasyprint  # noqa: F401  (needs Debian's Pango libraries)
    except (ImportError, OSError) as exc:
        return (f"WeasyPrint is not usable ({exc}). Fix: install Chromium (Debian: apt-get install chromium), or pip install weasyprint "
                f"and install Debian's libpango-1.0-0 and libpangoft2-1.0-0.")
    return None


@lru_cache(maxsize=1)
def _cjk_fonts_installed() -> bool:
    try:
        return bool(subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return False
