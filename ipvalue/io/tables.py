"""Read patent tables (CSV / Parquet / Excel), map their headers, validate; write outputs atomically."""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.parsers import expat

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ipvalue.config import load_yaml, parse_yaml
from ipvalue.exceptions import ColumnError, EmptyInputError, InputFileError, SpecError
from ipvalue.files import PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE, open_private, private_folder  # noqa: F401 - re-exported (ipvalue.io)
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
        return cls._from_dict(parse_yaml(shipped.read_bytes(), where=f"package:mappings/{which}.yaml", package_data=True), which)

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


@dataclass(frozen=True)
class ReadLimits:
    """The most a table read may hold; a file beyond one is refused before it is parsed (or as
    soon as the parse passes the limit), with an :class:`~ipvalue.exceptions.InputFileError`
    naming the limit and the fix.

    Attributes
    ----------
    max_rows : int, default=1_000_000
        Data rows (a spreadsheet's row numbers count, empty rows between data included).
    max_cells : int, default=50_000_000
        Rows × columns (a spreadsheet pads every row to its widest).
    max_bytes : int, default=2_000_000_000
        Bytes to parse after decompression: a CSV's size, the declared uncompressed size of an
        .xlsx's zip members, a Parquet file's uncompressed row groups.

    Examples
    --------
    >>> ReadLimits(max_rows=50_000)        # a bank's own, stricter limit
    ReadLimits(max_rows=50000, max_cells=50000000, max_bytes=2000000000)
    """

    max_rows: int = 1_000_000
    max_cells: int = 50_000_000
    max_bytes: int = 2_000_000_000

    def __post_init__(self):
        for name in ("max_rows", "max_cells", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"The '{name}' of ReadLimits must be a whole number >= 1. Got {value!r}.")

    def refuse(self, path, what: str, got: int, limit: str) -> InputFileError:
        """The error for a file beyond ``limit`` (a field name): the file, what it holds, the limit and the fix."""
        value = getattr(self, limit)
        return InputFileError(f"{Path(path).name} {what} {got:,}, above the {value:,} {limit.replace('_', ' ')} of a read (ReadLimits.{limit}). "
                              "Fix: export only the patents needed (e.g. the borrower's), or split the file; a bank that needs more sets "
                              f"ReadLimits({limit}=...).")


#: Limits of :func:`read_table` (the CLI, batch jobs): a collateral book of a million patents.
DEFAULT_LIMITS = ReadLimits()
#: Limits for an officer's upload to the service: one borrower's export (the service's body
#: limit is 20 MB).
UPLOAD_LIMITS = ReadLimits(max_rows=100_000, max_cells=5_000_000, max_bytes=200_000_000)
#: Parquet column types a patent table may hold (nested, binary and extension types are refused).
_PARQUET_TYPES = ("is_string", "is_large_string", "is_integer", "is_floating", "is_boolean", "is_date", "is_timestamp", "is_null", "is_decimal")


def check_encoding(encoding, *, source: str = "the file") -> str | None:
    """``encoding`` when it names a text codec Python knows (None passes: detect).

    Raises
    ------
    InputFileError
        An unknown name (``'x'``), a non-text codec (``'base64'``, ``'zlib'``) or not a string.
    """
    if encoding is None:
        return None
    try:
        if not isinstance(encoding, str):
            raise LookupError
        "a".encode(encoding)  # LookupError for unknown and for bytes-to-bytes codecs (b"".decode takes a shortcut)
    except LookupError:
        raise InputFileError(f"The 'encoding' of {source} must be the name of a text encoding. Got {encoding!r}. "
                             "Fix: use utf-8, gbk, gb18030 or big5, or leave it out (UTF-8, then GB18030, are tried).") from None
    return encoding


#: The delimiters a CSV export may use: comma, semicolon (European Excel), tab, pipe.
DELIMITERS = ",;\t|"


def sniff_delimiter(path: str | Path, encoding: str) -> str:
    """The delimiter of a CSV's header line among :data:`DELIMITERS` (:class:`csv.Sniffer` on the
    first line), a comma when it has none of them: one rule for ``validate`` and ``score``, and never
    a letter or a line break, which the sniffer alone may pick for a one-column header."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        line = fh.readline()
    try:
        return csv.Sniffer().sniff(line, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_table(path: str | Path, *, encoding: str | None = None, sheet_name=0, limits: ReadLimits | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV, Parquet or Excel file as raw text cells, without interpretation.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt``/``.tsv``, ``.parquet``/``.pq`` or ``.xlsx``/``.xls``.
    encoding : str, optional
        CSV encoding. By default UTF-8 is tried, then GB18030 (GBK-compatible).
    sheet_name : int or str, default=0
        Excel sheet.
    limits : ReadLimits, optional
        Rows, cells and decompressed bytes; default :data:`DEFAULT_LIMITS`. Checked before
        parsing where the file declares them (Parquet metadata, an .xlsx's zip members and
        sheet), else while parsing.

    Returns
    -------
    frame : pandas.DataFrame
    notes : list of str
        E.g. which encoding was used.

    Raises
    ------
    InputFileError
        An unreadable, malformed or oversized file, or an unknown encoding.
    """
    path = Path(path)
    limits = limits or DEFAULT_LIMITS
    check_encoding(encoding, source=path.name)
    if not path.exists():
        raise FileNotFoundError(f"Input file {str(path)!r} does not exist. Fix: check the path.")
    suffix = path.suffix.lower()
    notes: list[str] = []
    if suffix in (".parquet", ".pq"):
        frame = _read_parquet(path, limits)
    elif suffix in (".xlsx", ".xlsm", ".xls"):
        frame = _read_excel(path, sheet_name, limits)
    elif suffix in (".csv", ".txt", ".tsv"):
        size = path.stat().st_size
        if size == 0:
            raise EmptyInputError(f"{path} is an empty file. Fix: export the table again with its header row.")
        if size > limits.max_bytes:
            raise limits.refuse(path, "has bytes", size, "max_bytes")
        enc = detect_encoding(path, encoding)
        try:
            sep = "\t" if suffix == ".tsv" else sniff_delimiter(path, enc)
            frame = pd.read_csv(path, dtype=str, encoding=enc, sep=sep, keep_default_na=True, nrows=limits.max_rows + 1)
        except UnicodeError as exc:  # a decode error, or a UTF-16/32 stream without its byte-order mark
            why = f"{exc.reason} at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else str(exc)
            raise InputFileError(
                f"{path} could not be decoded as {enc} ({why}). Fix: pass encoding= (e.g. 'gbk', 'big5') or save it as UTF-8."
            ) from None
        except pd.errors.EmptyDataError:  # only blank lines: no header to read
            raise EmptyInputError(f"{path} holds no header row (only blank lines). Fix: export the table again with its header row.") from None
        except (pd.errors.ParserError, csv.Error) as exc:
            raise InputFileError(
                f"{path} is not a well-formed table: {str(exc).strip()}. "
                "Fix: every row needs as many fields as the header, and quotes must be closed; re-export the file."
            ) from exc
        if len(frame) > limits.max_rows:
            raise limits.refuse(path, "has data rows: more than", limits.max_rows, "max_rows")
        if frame.size > limits.max_cells:
            raise limits.refuse(path, "has cells (rows × columns)", frame.size, "max_cells")
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


def _read_parquet(path: Path, limits: ReadLimits) -> pd.DataFrame:
    """A Parquet file checked from its footer (rows, cells, uncompressed bytes, column types)
    before its data is read; anything pyarrow cannot read is an :class:`InputFileError`."""
    import pyarrow.parquet as pq

    def unreadable(exc: Exception) -> InputFileError:
        return InputFileError(f"{path.name} cannot be read as a Parquet file ({type(exc).__name__}: {str(exc)[:200]}). "
                              "Fix: write it again with pandas / pyarrow (DataFrame.to_parquet), or send CSV or .xlsx.")

    try:
        with pq.ParquetFile(path) as pf:
            meta = pf.metadata
            if meta.num_rows > limits.max_rows:
                raise limits.refuse(path, "declares data rows", meta.num_rows, "max_rows")
            if meta.num_rows * meta.num_columns > limits.max_cells:
                raise limits.refuse(path, "declares cells (rows × columns)", meta.num_rows * meta.num_columns, "max_cells")
            uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if uncompressed > limits.max_bytes:
                raise limits.refuse(path, "declares uncompressed bytes", uncompressed, "max_bytes")
            schema = pf.schema_arrow
            for field in schema:
                t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
                if not any(getattr(pa.types, check)(t) for check in _PARQUET_TYPES):
                    raise InputFileError(f"{path.name}: column {field.name!r} has type {field.type}, which a patent table cannot hold. "
                                         "Fix: store text as UTF-8 strings, counts and amounts as numbers, dates as dates or YYYY-MM-DD text.")
            return pf.read().to_pandas()
    except (InputFileError, MemoryError):  # MemoryError (pyarrow's too): the caller's memory limit, not a bad file
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError) as exc:  # a corrupt footer, page or schema
        raise unreadable(exc) from exc


def _read_excel(path: Path, sheet_name, limits: ReadLimits) -> pd.DataFrame:
    """Excel cells as objects (date cells stay dates); fake, unreadable and oversized workbooks
    refused clearly. An .xlsx is scanned first (zip members' declared sizes, the sheet's declared
    dimension, its rows and widest row, streamed) so that nothing is built beyond the limits."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n").lower().startswith((b"<", b"\x00<")):
        raise InputFileError(
            f"{path} is an HTML table saved with an Excel name (common in exports from Chinese systems), not a workbook. "
            "Fix: open it in Excel or WPS and save it as .xlsx or CSV (UTF-8), then read that file."
        )
    xlsx = path.suffix.lower() in (".xlsx", ".xlsm")
    try:
        merged = scan_xlsx(path, sheet_name, limits) if xlsx else []
        frame = pd.read_excel(path, sheet_name=sheet_name, dtype=object)
        return _fill_merged_cells(frame, merged)
    except (InputFileError, MemoryError):
        raise
    except ImportError as exc:
        raise InputFileError(f"{path} is an old binary .xls workbook, which needs the 'xlrd' package. Fix: save it as .xlsx or CSV.") from exc
    except (ValueError, KeyError, OSError) as exc:
        if isinstance(exc, ValueError) and "Worksheet" in str(exc):
            raise InputFileError(f"{path}: {exc}. Fix: pass the sheet's name or number (sheet_name=).") from exc
        raise InputFileError(f"{path} cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). Fix: save it again as .xlsx or CSV.") from exc
    except Exception as exc:  # zipfile.BadZipFile, openpyxl's InvalidFileException: both mean "not a workbook"
        raise InputFileError(f"{path} cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). Fix: save it again as .xlsx or CSV.") from exc


_RELATIONSHIP = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


#: Largest package part (workbook, relationships) parsed as a whole; the sheet itself is streamed.
_XLSX_PART_MAX_BYTES = 10_000_000


def _xml_root(archive: zipfile.ZipFile, member: str):
    from xml.etree.ElementTree import fromstring

    if archive.getinfo(member).file_size > _XLSX_PART_MAX_BYTES:
        raise InputFileError(f"The workbook part {member!r} declares more than {_XLSX_PART_MAX_BYTES:,} bytes; a workbook's index is a few kB. "
                             "Fix: save the workbook again from Excel or WPS.")
    return fromstring(archive.read(member))


def _sheet_member(archive: zipfile.ZipFile, sheet_name) -> str:
    """The zip member holding ``sheet_name``: a sheet's name, or the n-th worksheet in the
    workbook's order (as openpyxl and pandas count them), found through the package's
    relationships."""
    names = set(archive.namelist())
    book = "xl/workbook.xml"
    if "_rels/.rels" in names:
        book = next((r.get("Target", "") for r in _xml_root(archive, "_rels/.rels") if r.get("Type", "").endswith("/officeDocument")), book).lstrip("/")
    folder, _, book_file = book.rpartition("/")
    worksheets = {}  # relationship id -> member
    rels = f"{folder}/_rels/{book_file}.rels" if folder else f"_rels/{book_file}.rels"
    if rels in names:
        for r in _xml_root(archive, rels):
            if r.get("Type", "").endswith("/worksheet"):
                target = r.get("Target", "")
                worksheets[r.get("Id")] = target.lstrip("/") if target.startswith("/") else f"{folder}/{target}".lstrip("/")
    sheets = [(s.get("name"), worksheets[s.get(_RELATIONSHIP)]) for s in _xml_root(archive, book).iter()
              if _local(s.tag) == "sheet" and s.get(_RELATIONSHIP) in worksheets]
    if isinstance(sheet_name, int):
        member = sheets[sheet_name][1] if -len(sheets) <= sheet_name < len(sheets) else None
    else:
        member = next((m for n, m in sheets if n == sheet_name), None)
    if member is None or member not in names:
        raise ValueError(f"Worksheet {sheet_name!r} not found (the workbook has {[n for n, _ in sheets]})")
    return member


def scan_xlsx(path: str | Path, sheet_name=0, limits: ReadLimits | None = None) -> list[str]:
    """Check an .xlsx against ``limits`` before it is opened, and return its merged ranges.

    The zip members' declared uncompressed sizes are summed (Python's zipfile never inflates a
    member beyond its declared size), then the sheet's XML is streamed once: its declared
    ``<dimension>`` (openpyxl pads every row to it), its highest row number and its widest row
    (pandas pads every row to the widest) are checked as they come, so a 180 KB workbook that
    expands to 200,000 rows, or one cell in column XFD, is refused without building a table.

    Parameters
    ----------
    path : str or Path
    sheet_name : int or str, default=0
    limits : ReadLimits, optional
        Default :data:`DEFAULT_LIMITS`.

    Returns
    -------
    list of str
        The sheet's merged ranges (``'D2:D3'``).

    Raises
    ------
    InputFileError
        A limit is exceeded (naming it and the fix), or the file is not an .xlsx package.
    """
    path = Path(path)
    limits = limits or DEFAULT_LIMITS
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(i.file_size for i in archive.infolist())
            if declared > limits.max_bytes:
                raise limits.refuse(path, "expands (its zip members' declared sizes) to bytes", declared, "max_bytes")
            member = _sheet_member(archive, sheet_name)
            with archive.open(member) as source:
                return _scan_sheet(source, path, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, expat.ExpatError, SyntaxError, RuntimeError, NotImplementedError, EOFError) as exc:
        raise InputFileError(f"{path} cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). Fix: save it again as .xlsx or CSV.") from exc


def _scan_sheet(source, path: Path, limits: ReadLimits) -> list[str]:
    """Stream a sheet's XML with expat (no tree is built): the highest row number, the widest row
    and the declared dimension are checked against ``limits`` as they come."""
    state = {"rows": 0, "width": 0, "row": 0, "column": 0}
    merged: list[str] = []

    def cells_checked():  # data rows (row 1 is the header) × the widest row
        cells = max(state["rows"] - 1, 0) * state["width"]
        if cells > limits.max_cells:
            raise limits.refuse(path, f"spans cells (rows × columns, {state['rows'] - 1:,} × {state['width']:,})", cells, "max_cells")

    def start(name: str, attrs: dict) -> None:
        tag = name.rpartition(":")[2]
        if tag == "c":  # every cell counts, empty ones too: openpyxl pads each row to its last cell
            ref = _CELL_REF.fullmatch(attrs.get("r") or "")
            state["column"] = _column_number(ref.group(1)) if ref else state["column"] + 1
            if state["column"] > state["width"]:
                state["width"] = state["column"]
                cells_checked()
        elif tag == "row":
            state["row"] = int(attrs["r"]) if str(attrs.get("r", "")).isdigit() else state["row"] + 1
            state["column"] = 0
            if state["row"] > state["rows"]:
                state["rows"] = state["row"]
                if state["rows"] - 1 > limits.max_rows:  # row 1 is the header
                    raise limits.refuse(path, "has data rows: more than", limits.max_rows, "max_rows")
                cells_checked()
        elif tag == "dimension":
            bounds = [_CELL_REF.fullmatch(part) for part in (attrs.get("ref") or "").split(":")]
            if all(bounds):
                declared_rows, declared_width = int(bounds[-1].group(2)), _column_number(bounds[-1].group(1))
                if declared_rows - 1 > limits.max_rows or (declared_rows - 1) * declared_width > limits.max_cells:
                    raise InputFileError(f"{path.name} declares its sheet as {attrs['ref']} ({declared_rows:,} rows × {declared_width:,} columns), "
                                         f"beyond the {limits.max_rows:,} rows / {limits.max_cells:,} cells of a read (ReadLimits). "
                                         "Fix: save the sheet again from Excel or WPS with only the data (delete the empty rows and columns), or split it.")
        elif tag == "mergeCell" and attrs.get("ref"):
            merged.append(attrs["ref"])

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.ParseFile(source)
    return merged


def _fill_merged_cells(frame: pd.DataFrame, merged: list[str]) -> pd.DataFrame:
    """Every cell of a merged range gets the range's value: Excel keeps it in the top-left cell
    only, so a merged owner cell (one applicant over several patents) would leave the other rows
    with no owner. ``merged`` comes from :func:`scan_xlsx` (no second, full load of the
    workbook); a range that starts in the header row is left as it is."""
    from openpyxl.utils.cell import range_boundaries

    frame = frame.copy() if merged else frame
    for ref in merged:
        min_col, min_row, max_col, max_row = range_boundaries(ref)
        top = min_row - 2  # sheet row 1 is the header; row 2 is frame row 0
        if top < 0 or top >= len(frame) or min_col > frame.shape[1]:
            continue
        frame.iloc[top: max_row - 1, min_col - 1: max_col] = frame.iloc[top, min_col - 1]
    return frame


#: Share of Chinese characters outside GB2312 above which a GB18030 decoding is taken for Big5
#: (or other) text read with the wrong codec: ordinary simplified text is almost all GB2312.
MOJIBAKE_RARE_SHARE = 0.2


def _refuse_big5_mojibake(path: Path, n_bytes: int = 65536) -> None:
    """Refuse a file decoded as GB18030 whose text is mostly rare characters and which is valid Big5."""
    with open(path, "rb") as fh:
        raw = fh.read(n_bytes)
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
    limits: ReadLimits | None = None,
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
    limits : ReadLimits, optional
        Rows, cells and decompressed bytes (default :data:`DEFAULT_LIMITS`); an officer's upload
        takes :data:`UPLOAD_LIMITS`. To bound the memory of the parse too, use
        :func:`ipvalue.io.bounded.read_patents_bounded`.

    Returns
    -------
    ValidationResult
        ``valid`` PatentFrame, ``quarantine`` rows with reasons, ``problems``, ``notes``.
    """
    raw, notes = read_table(path, encoding=encoding, sheet_name=sheet_name, limits=limits)
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
    return write_bytes_atomic(text.encode("utf-8"), path)


# --- private state files (0600) ------------------------------------------------------------------
#
# The audit store, its key and checkpoints, uploads and reports are the bank's records: readable by
# the user that runs ipvalue only (F15: they were created 0644). Atomic writes above already go
# through ``tempfile.mkstemp`` (mode 0600) and keep that mode after the rename. The modes and the
# helpers that create private files and folders live in :mod:`ipvalue.files` (the audit store uses
# them and imports nothing that reads configuration); they are re-exported here.


def write_bytes_atomic(content: bytes, path: str | Path) -> Path:
    """Write bytes (an upload, a PDF) atomically, mode 0600; no temporary file is left on failure."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(content)
    except BaseException:
        _drop(tmp)
        raise
    _finish(tmp, path)
    return path
