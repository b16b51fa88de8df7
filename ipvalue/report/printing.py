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

import base64
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from contextvars import ContextVar
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
#: Laying the page out in the browser's own process: the 18-page report prints in about 1.35 s
#: instead of 1.85 s (no renderer, GPU and network processes started and spoken to), with the same
#: text and pixels. The page is then not in a sandboxed process, as a WeasyPrint print never is;
#: it can run no script and load nothing (PRINT_POLICY). Where a Chromium build cannot print this
#: way, the print is retried with its usual processes.
SINGLE_PROCESS_FLAG = "--single-process"


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
    started = _STARTED.get()
    if started is not None:
        _STARTED.set(None)  # one page per started browser: a later one is printed the usual way
        try:
            return started.print(html)
        except PdfPrintError as exc:
            logger.info("%s Printing it with a Chromium started for it instead.", exc)
        finally:
            started.close()
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
    :data:`PRINT_POLICY`, in a private temporary folder removed afterwards; in one process
    (:data:`SINGLE_PROCESS_FLAG`), and again with Chromium's usual processes if that fails.

    Raises
    ------
    PdfPrintError
        Chromium did not start, exited with an error, wrote no PDF, or took over ``timeout`` s
        (its process group is then killed; a time-out is not retried).
    """
    folder = Path(tempfile.mkdtemp(prefix="ipvalue-pdf-"))  # mode 0700: only this user reads the page
    try:
        page = folder / "page.html"
        page.write_text(with_print_policy(with_inline_svg(html)), encoding="utf-8")
        try:
            return _print_page(page, chromium, timeout=timeout, extra=(SINGLE_PROCESS_FLAG,))
        except _PrintCrashed as exc:
            logger.info("%s Printing it again with Chromium's usual processes.", exc)
            shutil.rmtree(folder / "profile", ignore_errors=True)
        try:
            return _print_page(page, chromium, timeout=timeout)
        except _PrintCrashed as exc:
            raise PdfPrintError(str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _PrintCrashed(PdfPrintError):
    """Chromium ran and exited without a PDF (worth one more try with other flags)."""


def _print_page(page: Path, chromium: str, *, timeout: float, extra: tuple[str, ...] = ()) -> bytes:
    """One Chromium run printing ``page`` (in its private folder) to ``page.pdf`` beside it."""
    folder, out = page.parent, page.with_suffix(".pdf")
    out.unlink(missing_ok=True)
    command = [chromium, *CHROMIUM_FLAGS, *extra, f"--user-data-dir={folder / 'profile'}", f"--print-to-pdf={out}", page.as_uri()]
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
        raise _PrintCrashed(f"Chromium ({chromium}) failed to print the PDF ({got}){_last_error(stderr)}. "
                            f"Fix: check that it runs (`{chromium} --headless --version`), set {CHROMIUM_ENV} to a working Chromium, "
                            f"or set {ENGINE_ENV}=weasyprint.")
    return pdf


# --- a Chromium started before the page exists --------------------------------------------------

_STARTED: ContextVar["StartedChromium | None"] = ContextVar("ipvalue_started_chromium", default=None)


@contextmanager
def chromium_started():
    """Within the block, the first PDF :func:`render_pdf` prints is printed by a headless Chromium
    started on entry (where Chromium is the engine), so its start-up (0.5-1 s) overlaps the work
    that makes the page: ``ipvalue value`` starts it before it values. It is stopped when the
    block ends, printed or not."""
    started = None
    if os.name == "posix" and pdf_unavailable() is None and pdf_engine() == "chromium":
        try:
            started = StartedChromium(find_chromium())
        except PdfPrintError as exc:
            logger.info("%s The PDF will be printed by a Chromium started for it.", exc)
    token = _STARTED.set(started)
    try:
        yield
    finally:
        _STARTED.reset(token)
        if started is not None:
            started.close()


class _Refused(PdfPrintError):
    """Chromium answered a DevTools call with an error."""


#: Run by ``python -I -S -c``: descriptors argv[1] and argv[2] become 3 and 4, then Chromium (argv[3:]) runs.
_PIPE_LAUNCHER = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                  "os.close(int(sys.argv[1])); os.close(int(sys.argv[2])); os.execvp(sys.argv[3], sys.argv[3:])")


class StartedChromium:
    """A headless Chromium (one process, :data:`SINGLE_PROCESS_FLAG`, with :data:`CHROMIUM_FLAGS`)
    waiting in a private folder for a page to print, driven over its DevTools pipe
    (``--remote-debugging-pipe``: file descriptors 3 and 4, no port). :meth:`print` gives the
    same PDF as ``--print-to-pdf`` (same text layer, same pixels, tagged, with bookmarks).

    Raises
    ------
    PdfPrintError
        Chromium could not be started.
    """

    #: What ``--print-to-pdf`` with ``--no-pdf-header-footer --generate-pdf-document-outline`` asks for.
    PRINT_PARAMS = {"preferCSSPageSize": True, "printBackground": True, "displayHeaderFooter": False, "generateTaggedPDF": True,
                    "generateDocumentOutline": True}

    def __init__(self, chromium: str, *, timeout: float = CHROMIUM_TIMEOUT_S):
        self.chromium, self.timeout = chromium, timeout
        self.folder = Path(tempfile.mkdtemp(prefix="ipvalue-pdf-"))  # mode 0700, as for a one-off print
        import fcntl  # POSIX: chromium_started starts nothing elsewhere

        # the pipe's ends for Chromium, numbered 10 or more, become its descriptors 3 and 4 in a small
        # launcher that then turns into Chromium (no shell: it would only name descriptors 0-9)
        ends = [os.pipe() for _ in range(2)]
        to_browser, from_browser = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (ends[0][0], ends[1][1]))
        self._to_browser, self._from_browser = ends[0][1], ends[1][0]
        os.close(ends[0][0])
        os.close(ends[1][1])
        command = [chromium, *CHROMIUM_FLAGS, SINGLE_PROCESS_FLAG, "--remote-debugging-pipe", f"--user-data-dir={self.folder / 'profile'}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # as in _print_page: Chromium refuses to start as root otherwise
        launcher = [sys.executable, "-I", "-S", "-c", _PIPE_LAUNCHER, str(to_browser), str(from_browser), *command]
        try:
            self.process = subprocess.Popen(launcher, pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, cwd=self.folder, start_new_session=True)
        except OSError as exc:
            self._release()
            raise PdfPrintError(f"Chromium ({chromium}) could not be started ahead of the page: {exc}.") from exc
        finally:
            os.close(to_browser)
            os.close(from_browser)
        self._next_id, self._received = 0, b""

    def print(self, html: str) -> bytes:
        """``html`` printed (under :data:`PRINT_POLICY`, from the private folder) as PDF.

        Raises
        ------
        PdfPrintError
            The browser exited, answered with an error, or took over its time-out.
        """
        deadline = time.monotonic() + self.timeout
        # Chromium is ready for a tab once its start-up target (chrome://headless/...) is gone
        while any(t.get("url", "").startswith("chrome://headless") for t in self._call("Target.getTargets", deadline=deadline)["targetInfos"]):
            time.sleep(0.03)
        page = self.folder / "page.html"
        page.write_text(with_print_policy(with_inline_svg(html)), encoding="utf-8")
        tab = self._call("Target.createTarget", {"url": page.as_uri()}, deadline=deadline)["targetId"]
        # the tab's first navigation may move it to another frame and end a session attached to it:
        # attach (again) until the page reports itself loaded
        session, refusals = None, 0
        while True:
            try:
                session = session or self._call("Target.attachToTarget", {"targetId": tab, "flatten": True}, deadline=deadline)["sessionId"]
                state = self._call("Runtime.evaluate", {"expression": "document.readyState === 'complete' && location.href", "returnByValue": True},
                                   session=session, deadline=deadline)
            except _Refused:
                refusals += 1
                if refusals > 20:
                    raise
                session = None
                continue
            if state.get("result", {}).get("value") == page.as_uri():
                break
            time.sleep(0.03)
        printed = self._call("Page.printToPDF", self.PRINT_PARAMS, session=session, deadline=deadline)
        pdf = base64.b64decode(printed.get("data", ""))
        if not pdf.startswith(b"%PDF"):
            raise PdfPrintError(f"Chromium ({self.chromium}) printed something other than a PDF.")
        return pdf

    def close(self) -> None:
        """Stop the browser (its whole process group) and remove its folder."""
        if self.process.poll() is None:
            _kill_group(self.process)
        self.process.wait()
        self._release()

    def _release(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._to_browser = self._from_browser = -1
        shutil.rmtree(self.folder, ignore_errors=True)

    def _call(self, method: str, params: dict | None = None, *, session: str | None = None, deadline: float) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        data = json.dumps(message).encode("utf-8") + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data):]
        except OSError as exc:
            raise PdfPrintError(f"Chromium ({self.chromium}) stopped listening ({exc}).") from None
        answer = self._receive(lambda m: m.get("id") == self._next_id, deadline)
        if "error" in answer:
            raise _Refused(f"Chromium ({self.chromium}) refused {method}: {answer['error'].get('message', answer['error'])}.")
        return answer.get("result", {})

    def _receive(self, wanted, deadline: float) -> dict:
        """The first message ``wanted`` accepts (the others, events mostly, are passed over)."""
        while True:
            while b"\0" not in self._received:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                    raise PdfPrintError(f"Chromium ({self.chromium}) did not print the PDF within {self.timeout:.0f} s.")
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise PdfPrintError(f"Chromium ({self.chromium}) exited before printing the PDF (exit code {self.process.poll()}).")
                self._received += chunk
            raw, self._received = self._received.split(b"\0", 1)
            message = json.loads(raw)
            if wanted(message):
                return message


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
