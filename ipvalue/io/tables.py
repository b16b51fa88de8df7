"""Read patent tables (CSV / Parquet / Excel), map their headers, validate; write outputs atomically."""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ipvalue.config import load_yaml, parse_yaml
from ipvalue.exceptions import ColumnError, EmptyInputError, InputFileError, SpecError
from ipvalue.frame import BLANK_CHARS, COLUMN_BY_NAME, REQUIRED, ValidationResult, on_unique, suggest, validate_patent_frame
from ipvalue.temporary import LIVE_TEMPORARY_FILES as _LIVE_TEMPORARY

logger = logging.getLogger(__name__)

#: Encodings tried in turn when none is given: UTF-8 (with or without BOM), then GB18030, the
#: superset of GBK / GB2312 that Chinese Excel and database exports use.
ENCODINGS = ("utf-8-sig", "gb18030")
_FOLD_PAIRS = (("（", "("), ("）", ")"), ("；", ";"), ("／", "/"), ("：", ":"), ("　", " "))
_FOLD = str.maketrans(dict(_FOLD_PAIRS))
_NEEDS_FOLD = f"[|{''.join(full for full, _ in _FOLD_PAIRS)}]|[{BLANK_CHARS}];|;[{BLANK_CHARS}]"
LIST_COLUMNS = [c.name for c in COLUMN_BY_NAME.values() if c.kind == "list"]


@dataclass(frozen=True)
class ColumnMapping:
    """Source header → PatentFrame column, plus source value → contract value per column."""

    name: str
    columns: dict[str, str]
    values: dict[str, dict[str, str]]

    @classmethod
    def load(cls, which: str | Path | dict = "auto") -> "ColumnMapping":
        """A shipped mapping ('cn', 'en', 'auto' = both), a YAML path, or a dict of the same shape."""
        if isinstance(which, dict):
            return cls._from_dict(which, "custom")
        if isinstance(which, Path) or str(which).endswith((".yaml", ".yml")):
            return cls._from_dict(load_yaml(Path(which))[0], str(which))
        if which == "auto":
            cn, en = cls.load("cn"), cls.load("en")
            values = {k: {**en.values.get(k, {}), **cn.values.get(k, {})} for k in {*cn.values, *en.values}}
            return cls("auto", {**cn.columns, **en.columns}, values)
        shipped = resources.files("ipvalue") / "mappings" / f"{which}.yaml"
        if not shipped.is_file():
            raise SpecError(f"Unknown column mapping {which!r}. Fix: use 'auto', 'cn', 'en', a YAML path or a dict.")
        return cls._from_dict(parse_yaml(shipped.read_bytes(), where=f"package:mappings/{which}.yaml"), which)

    @classmethod
    def _from_dict(cls, spec: dict, name: str) -> "ColumnMapping":
        columns = {_fold_header(k): v for k, v in (spec.get("columns") or {}).items()}
        bad = {k: v for k, v in columns.items() if v not in COLUMN_BY_NAME}
        if bad:
            first = next(iter(bad.items()))
            raise SpecError(
                f"Column mapping {name!r} maps to unknown PatentFrame column(s) {sorted(set(bad.values()))}; "
                f"e.g. {first[0]!r} -> {first[1]!r}{suggest(first[1], COLUMN_BY_NAME)}. Fix: use names from 'ipvalue contract'."
            )
        values = {col: {str(k).strip(): v for k, v in vals.items()} for col, vals in (spec.get("values") or {}).items()}
        return cls(spec.get("name", name), columns, values)

    def renames(self, header) -> tuple[dict[str, str], list[str]]:
        """``{input header: PatentFrame column}`` for a file's header, and notes of headers left out.
        Canonical names first, then the mapping in its declared order of preference."""
        notes: list[str] = []
        rename: dict[str, str] = {}
        taken: set[str] = set()
        folded = {c: _fold_header(c) for c in header}
        candidates = [(f, col) for col, f in folded.items() if f in COLUMN_BY_NAME]
        candidates += [(target, col) for src, target in self.columns.items() for col, f in folded.items() if f == src]
        for target, col in candidates:
            if col in rename:
                continue
            if target in taken:
                notes.append(f"column '{col}' ignored: '{target}' already comes from another column")
                continue
            rename[col] = target
            taken.add(target)
        return rename, notes

    def apply(self, raw: pd.DataFrame, *, source: str = "input") -> tuple[pd.DataFrame, list[str]]:
        """Rename headers and translate values. Returns the mapped frame and notes of what was done."""
        rename, notes = self.renames(raw.columns)
        ignored = [c for c in raw.columns if c not in rename]
        if ignored:
            notes.append(f"{len(ignored)} column(s) not in the contract were ignored: {ignored[:12]}{' ...' if len(ignored) > 12 else ''}")
        mapped = raw[list(rename)].rename(columns=rename)
        if "jurisdiction" not in mapped.columns and "patent_id" in mapped.columns:
            prefix = mapped["patent_id"].astype("str").str.strip().str.extract(r"^([A-Za-z]{2})\d", expand=False).str.upper()
            if prefix.notna().any():
                mapped["jurisdiction"] = prefix
                notes.append("jurisdiction derived from the two-letter prefix of patent_id (e.g. CN112345678B -> CN)")
        missing = [c for c in REQUIRED if c not in mapped.columns]
        if missing:
            parts = [f"'{m}'{self._suggest_source(m, ignored)}" for m in missing]
            raise ColumnError(
                f"{source} is missing required column(s) {', '.join(parts)} after applying mapping {self.name!r}. "
                f"Unmapped columns in the file: {ignored or 'none'}. "
                "Fix: rename those columns, or pass mapping= a dict/YAML with 'columns: {your header: canonical name}'."
            )
        for col, table in self.values.items():
            if col in mapped.columns:
                mapped[col] = on_unique(mapped[col], lambda u, table=table: _translate(u, table))
        for col in LIST_COLUMNS:
            if col in mapped.columns:
                mapped[col] = _fold_list(mapped[col])
        return mapped, notes


    def _suggest_source(self, target: str, unmapped: list[str]) -> str:
        """' (did you mean X?)' naming the unmapped file column closest to any known header of ``target``."""
        import difflib

        known = [target] + [src for src, t in self.columns.items() if t == target]
        scored = [
            (difflib.SequenceMatcher(None, _fold_header(col), k).ratio(), col) for col in unmapped for k in known
        ]
        best = max(scored, default=(0.0, None))
        return f" (did you mean '{best[1]}'?)" if best[0] >= 0.6 else ""


def _translate(values: pd.Series, table: dict) -> pd.Series:
    """Source values → contract values (exact match first, then lower case with '_' for blanks and
    '-'); values not in the table stay as they are."""
    key = values.astype("str").str.strip()
    lowered = key.str.lower().str.replace(f"[{BLANK_CHARS}-]+", "_", regex=True)
    translated = key.map(table).fillna(lowered.map(table))
    return translated.where(translated.notna(), values)


def _fold_list(s: pd.Series) -> pd.Series:
    """Full-width characters folded, '|' and '；' separators made ';' without surrounding blanks.

    Only the cells that need it are rewritten (found with one Arrow regex pass); the patterns avoid
    ``\\s`` and ``str.translate``, which would run in Python, row by row.
    """
    out = s.astype("str").where(s.notna())
    needs = pc.fill_null(pc.match_substring_regex(pa.array(out, from_pandas=True), _NEEDS_FOLD), False).to_numpy(zero_copy_only=False)
    if needs.any():
        part = out[needs]
        for full, half in _FOLD_PAIRS:
            part = part.str.replace(full, half, regex=False)
        out[needs] = part.str.replace(f"[{BLANK_CHARS}]*[|;][{BLANK_CHARS}]*", ";", regex=True)
    return out


def _fold_header(name) -> str:
    s = str(name).translate(_FOLD).strip()
    s = re.sub(r"\s+", "", s) if re.search(r"[\u4e00-\u9fff]", s) else re.sub(r"[\s\-]+", "_", s.lower())
    return s


def detect_encoding(path: str | Path, encoding: str | None = None) -> str:
    """``encoding`` when given; else UTF-8 (``utf-8-sig``) if the whole file decodes as UTF-8,
    else GB18030 (a superset of GBK), checked incrementally in blocks so that memory does not
    follow the file."""
    if encoding:
        return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while block := fh.read(1 << 22):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return ENCODINGS[0]
        except UnicodeDecodeError:
            return ENCODINGS[1]


def read_table(path: str | Path, *, encoding: str | None = None, sheet_name=0) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV, Parquet or Excel file as raw text cells, without interpretation.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt``/``.tsv``, ``.parquet``/``.pq`` or ``.xlsx``/``.xls``.
    encoding : str, optional
        CSV encoding. By default UTF-8 is tried, then GB18030 (GBK-compatible).
    sheet_name : int or str, default=0
        Excel sheet.

    Returns
    -------
    frame : pandas.DataFrame
    notes : list of str
        E.g. which encoding was used.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Input file {str(path)!r} does not exist. Fix: check the path.")
    suffix = path.suffix.lower()
    notes: list[str] = []
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".xlsx", ".xlsm", ".xls"):
        frame = _read_excel(path, sheet_name)
    elif suffix in (".csv", ".txt", ".tsv"):
        if path.stat().st_size == 0:
            raise EmptyInputError(f"{path} is an empty file. Fix: export the table again with its header row.")
        sep = "\t" if suffix == ".tsv" else None
        enc = detect_encoding(path, encoding)
        try:
            frame = pd.read_csv(path, dtype=str, encoding=enc, sep=sep, engine="python" if sep is None else "c", keep_default_na=True)
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{path} could not be decoded as {enc} ({exc.reason} at byte {exc.start}). Fix: pass encoding= (e.g. 'gbk', 'big5') or save it as UTF-8."
            ) from None
        except (pd.errors.ParserError, csv.Error) as exc:
            raise InputFileError(
                f"{path} is not a well-formed table: {str(exc).strip()}. "
                "Fix: every row needs as many fields as the header, and quotes must be closed; re-export the file."
            ) from exc
        if enc != ENCODINGS[0]:
            notes.append(f"{path.name} decoded as {enc}")
        if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra first field(s) as an index
            raise InputFileError(
                f"{path} is not a well-formed table: its data rows have more fields than the header. "
                "Fix: every row needs as many fields as the header, and quotes must be closed; re-export the file."
            )
        if encoding is None and enc == ENCODINGS[1]:
            _refuse_big5_mojibake(path)
    else:
        raise InputFileError(f"Unsupported file type {suffix!r} for {path}. Fix: use .csv, .parquet or .xlsx.")
    if len(frame) == 0:
        raise EmptyInputError(f"{path} has a header but no data rows. Fix: check the export or its filter.")
    return frame, notes


def _read_excel(path: Path, sheet_name) -> pd.DataFrame:
    """Excel cells as objects (date cells stay dates); fake and unreadable workbooks refused clearly."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n").lower().startswith((b"<", b"\x00<")):
        raise InputFileError(
            f"{path} is an HTML table saved with an Excel name (common in exports from Chinese systems), not a workbook. "
            "Fix: open it in Excel or WPS and save it as .xlsx or CSV (UTF-8), then read that file."
        )
    try:
        frame = pd.read_excel(path, sheet_name=sheet_name, dtype=object)
        return _fill_merged_cells(frame, path, sheet_name) if path.suffix.lower() in (".xlsx", ".xlsm") else frame
    except ImportError as exc:
        raise InputFileError(f"{path} is an old binary .xls workbook, which needs the 'xlrd' package. Fix: save it as .xlsx or CSV.") from exc
    except (ValueError, KeyError, OSError) as exc:
        if isinstance(exc, ValueError) and "Worksheet" in str(exc):
            raise InputFileError(f"{path}: {exc}. Fix: pass the sheet's name or number (sheet_name=).") from exc
        raise InputFileError(f"{path} cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). Fix: save it again as .xlsx or CSV.") from exc
    except Exception as exc:  # zipfile.BadZipFile, openpyxl's InvalidFileException: both mean "not a workbook"
        raise InputFileError(f"{path} cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). Fix: save it again as .xlsx or CSV.") from exc


def _fill_merged_cells(frame: pd.DataFrame, path: Path, sheet_name) -> pd.DataFrame:
    """Every cell of a merged range gets the range's value: Excel keeps it in the top-left cell
    only, so a merged owner cell (one applicant over several patents) would leave the other rows
    with no owner."""
    from openpyxl import load_workbook  # a dependency of pandas' Excel reader; merged ranges need the full (not read-only) mode

    book = load_workbook(path, data_only=True)
    sheet = book.worksheets[sheet_name] if isinstance(sheet_name, int) else book[sheet_name]
    ranges = [r for r in sheet.merged_cells.ranges if r.max_row >= 2]
    if not ranges:
        return frame
    frame = frame.copy()
    for r in ranges:
        value = sheet.cell(r.min_row, r.min_col).value
        rows = slice(max(r.min_row, 2) - 2, r.max_row - 1)  # sheet row 1 is the header; row 2 is frame row 0
        frame.iloc[rows, r.min_col - 1: r.max_col] = value
    return frame


#: Share of Chinese characters outside GB2312 above which a GB18030 decoding is taken for Big5
#: (or other) text read with the wrong codec: ordinary simplified text is almost all GB2312.
MOJIBAKE_RARE_SHARE = 0.2


def _refuse_big5_mojibake(path: Path, n_bytes: int = 65536) -> None:
    """Refuse a file decoded as GB18030 whose text is mostly rare characters and which is valid Big5."""
    raw = path.read_bytes()[:n_bytes]
    text = raw.decode("gb18030", errors="ignore")
    cjk = re.findall(r"[\u4e00-\u9fff]", text)
    if len(cjk) < 10:
        return
    rare = sum(1 for ch in set(cjk) if not _in_gb2312(ch)) / len(set(cjk))
    if rare <= MOJIBAKE_RARE_SHARE:
        return
    try:
        raw.decode("big5")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # a cut multi-byte character at the end is fine
            return
    raise InputFileError(
        f"{path} decodes as GB18030 only into mostly rare characters ({rare:.0%} outside GB2312): it looks like Big5 "
        "(Traditional Chinese) text. Fix: pass encoding='big5' (CLI: --encoding big5) or save the file as UTF-8."
    )


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def read_patents(
    path: str | Path,
    *,
    mapping: str | Path | dict = "auto",
    encoding: str | None = None,
    sheet_name=0,
    strict: bool = False,
    date_format: str | None = None,
) -> ValidationResult:
    """Load a patent table into a validated PatentFrame.

    Parameters
    ----------
    path : str or Path
        CSV, Parquet or Excel file with Chinese or English headers.
    mapping : {'auto', 'cn', 'en'}, path or dict, default='auto'
        Header and value mapping; 'auto' knows both shipped mappings.
    encoding : str, optional
        CSV encoding; UTF-8 then GB18030 are tried when omitted.
    sheet_name : int or str, default=0
    strict : bool, default=False
        Raise on any invalid row instead of quarantining it.
    date_format : str, optional
        The file's day/month order, e.g. ``'%d/%m/%Y'`` (CLI ``--date-format``); without it,
        dates that read both ways (05/03/2020) are quarantined.

    Returns
    -------
    ValidationResult
        ``valid`` PatentFrame, ``quarantine`` rows with reasons, ``problems``, ``notes``.
    """
    raw, notes = read_table(path, encoding=encoding, sheet_name=sheet_name)
    mapped, map_notes = ColumnMapping.load(mapping).apply(raw, source=str(path))
    result = validate_patent_frame(mapped, strict=strict, source=str(path), date_format=date_format)
    # The quarantine keeps the rows exactly as the file had them, under their own headers.
    quarantine = raw.loc[result.quarantine.index].copy()
    quarantine.insert(0, "row", result.quarantine["row"].to_numpy())
    quarantine.insert(1, "reasons", result.quarantine["reasons"].to_numpy())
    result.quarantine = quarantine
    result.notes = notes + map_notes + result.notes
    for n in result.notes:
        logger.info("%s: %s", path, n)
    return result


#: Cells starting with one of these are formulas to Excel / WPS (CSV injection, OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
#: When this process started: temporary files older than it are left over from an earlier run.
RUN_STARTED = time.time()


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    A text cell starting with ``= + - @``, tab or CR gets a leading ``'`` unless it is a plain
    number (``-12.5`` stays a number). Numeric columns are unchanged. Call it on every table
    written as CSV for people to open (quarantine, ``--valid-out``, ``pool/alerts.csv``);
    :func:`write_atomic` does so for ``.csv``.

    Examples
    --------
    >>> neutralise_formulas(pd.DataFrame({"id": ["=HYPERLINK(1)", "-3", "CN1"]}))["id"].tolist()
    ["'=HYPERLINK(1)", '-3', 'CN1']
    """
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        text = s.astype("str").where(s.notna())
        risky = text.str.match(r"^[=+\-@\t\r]").fillna(False).astype(bool)
        risky &= ~text.str.fullmatch(_PLAIN_NUMBER).fillna(False).astype(bool)
        if risky.any():
            s = s.astype(object)
            s[risky] = "'" + text[risky]
            out[col] = s
    return out


def sweep_temporary_files(folder: str | Path, *, older_than: float | None = None) -> list[Path]:
    """Remove ipvalue's temporary files (``.<name>.<random>.tmp``) left in ``folder`` by a killed run.

    Parameters
    ----------
    folder : str or Path
    older_than : float, optional
        POSIX time; only files last modified before it are removed. Default: when this process
        started (:data:`RUN_STARTED`), so a concurrent run's live files are kept.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    cutoff = RUN_STARTED if older_than is None else older_than
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(".*.tmp"):
        try:
            if tmp.is_file() and str(tmp) not in _LIVE_TEMPORARY and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # raced with another sweeper
            continue
    if removed:
        logger.info("removed %d temporary file(s) left by an earlier run in %s", len(removed), folder)
    return removed


def _temporary(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporary_files(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _LIVE_TEMPORARY.add(tmp)
    return tmp


def _finish(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        _LIVE_TEMPORARY.discard(tmp)


def write_atomic(frame: pd.DataFrame, path: str | Path, **kwargs) -> Path:
    """Write ``frame`` to Parquet or CSV (by suffix) through a temporary file and an atomic rename.

    A reader never sees a half-written file, and a crash leaves the old file (or none); a failed
    write (disk full) removes its temporary file, and temporary files left by a killed earlier
    run are swept first. CSV text cells are passed through :func:`neutralise_formulas`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise ValueError(f"Unsupported output type {path.suffix!r} for {path}. Fix: use .parquet or .csv.")
    tmp = _temporary(path)
    try:
        if suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False, **kwargs)
        else:
            neutralise_formulas(frame).to_csv(tmp, index=False, encoding="utf-8", **kwargs)
    except BaseException:
        _drop(tmp)
        raise
    _finish(tmp, path)
    return path


def _drop(tmp: str) -> None:
    if os.path.exists(tmp):
        os.remove(tmp)
    _LIVE_TEMPORARY.discard(tmp)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a text file (report, JSON) atomically, UTF-8; no temporary file is left on failure."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    except BaseException:
        _drop(tmp)
        raise
    _finish(tmp, path)
    return path
