"""Tables for people who work in Excel or WPS: CSV that opens right (UTF-8 with BOM, no formula
runs, no scientific notation) and ``.xlsx`` workbooks with typed cells, a frozen header row,
Chinese headings and number formats.

Both are written row block by row block, so a book of any size streams through them
(:class:`CsvStream`, :class:`XlsxBook`), and both have one-shot atomic writers for small tables
(:func:`write_csv_atomic`, :func:`write_xlsx_atomic`). The workbook is written with openpyxl (a
dependency already, in its write-only mode: memory stays flat); XlsxWriter is faster but would be
one more package.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.io.tables import _drop, _finish, _temporary, neutralise_formulas, write_atomic

#: The file types a table output may have, by extension.
TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".xlsx": "xlsx"}
#: Excel's limits: rows per sheet (with the header) and characters per cell.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767
#: Excel number formats used by ipvalue's workbooks.
MONEY = "#,##0"
MONEY_CENTS = "#,##0.00"
PERCENT = "0.0%"
COUNT = "#,##0"
RATIO = "0.0000"
DATE = "yyyy-mm-dd"
# Characters an .xlsx cell cannot hold (XML 1.0 control characters): shown as \xNN instead.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class OutputTypeError(ValueError):
    """An output file's name asks for a type that cannot be written there (an unknown extension,
    or a spreadsheet from an engine that writes Parquet folders): a usage error, exit 2."""


def table_format(path: str | Path) -> str:
    """``'parquet'``, ``'csv'`` or ``'xlsx'``, from the file's extension.

    Raises
    ------
    OutputTypeError
        Any other extension, naming the allowed ones.
    """
    suffix = Path(str(path)).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        stem = Path(str(path)).stem
        raise OutputTypeError(f"The output file {str(path)!r} must end in .parquet, .csv or .xlsx. Got {suffix or 'no extension'!r}. "
                              f"Fix: name it {stem}.parquet (any size, with the model's metadata), {stem}.csv (UTF-8 with BOM, "
                              f"opens in Excel) or {stem}.xlsx (a workbook with Chinese headings).")
    return TABLE_SUFFIXES[suffix]


def _positional(column: pd.Series) -> pd.Series:
    """A float column whose numbers print without an exponent: the few values Python would write
    as ``1e-05`` or ``1e+16`` are written out in full (``0.00001``)."""
    values = column.to_numpy(dtype=float, na_value=np.nan)
    magnitude = np.abs(values)
    odd = np.isfinite(values) & (values != 0) & ((magnitude < 1e-4) | (magnitude >= 1e16))
    if not odd.any():
        return column
    out = column.astype(object)
    out[odd] = [np.format_float_positional(v, trim="-") for v in values[odd]]
    return out


def csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` as CSV should carry it for a spreadsheet: text cells that cannot run as
    formulas (:func:`~ipvalue.io.neutralise_formulas`), floats without scientific notation, dates
    as ISO text (pandas writes ``YYYY-MM-DD`` when no cell has a time)."""
    out = neutralise_formulas(frame)
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col].dtype):
            out[col] = _positional(out[col])
    return out


class CsvStream:
    """CSV written block by block to an open text file (which the caller opens with
    ``encoding='utf-8-sig'``, so Excel reads the Chinese text right): the header once, every block
    through :func:`csv_ready`."""

    def __init__(self, handle):
        self.handle, self.rows = handle, 0
        self.header_written = False

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame) and self.header_written:
            return
        csv_ready(frame).to_csv(self.handle, index=False, header=not self.header_written, lineterminator="\n")
        self.header_written = True
        self.rows += len(frame)


def excel_text(value: str) -> str:
    """Text an .xlsx cell can hold: XML control characters shown as ``\\xNN``, cut at Excel's
    32,767 characters (with a mark that it was cut)."""
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if len(value) > EXCEL_MAX_CHARS:
        mark = "…[cut at Excel's 32,767 characters]"
        value = value[: EXCEL_MAX_CHARS - len(mark)] + mark
    return value


def _display_width(text: str) -> int:
    """Columns a text takes on screen: a CJK character counts two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _cells(column: pd.Series) -> list:
    """A column's values as the Python objects openpyxl types right: numbers as numbers (NaN and
    infinities empty), dates as dates, text as text, booleans as booleans."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return [None if pd.isna(v) else bool(v) for v in column.to_numpy(dtype=object)]
    if pd.api.types.is_integer_dtype(dtype):
        return [None if pd.isna(v) else int(v) for v in column.to_numpy(dtype=object)]
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype=float, na_value=np.nan)
        return [v if np.isfinite(v) else None for v in values.tolist()]
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            column = column.dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in column]
    return [_cell(v) for v in column.to_numpy(dtype=object)]


def _cell(value):
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, str):
        return excel_text(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None).to_pydatetime() if value.tzinfo else value.to_pydatetime()
    if isinstance(value, (dt.date, dt.datetime)):
        return value
    return excel_text(str(value))


class XlsxBook:
    """An .xlsx workbook written row block by row block (openpyxl's write-only mode): one sheet
    per table, a bold header row that stays frozen with an autofilter, typed cells, number formats
    per column, column widths from the header and the first block.

    Parameters
    ----------
    properties : dict, optional
        Document properties (title, subject, description, keywords) and, under ``custom``, named
        text properties (e.g. the model URI), which Excel shows under File → Info.
    """

    def __init__(self, *, properties: dict | None = None):
        from openpyxl import Workbook

        self.book = Workbook(write_only=True)
        self.sheets: dict[str, dict] = {}  # the sheet each table writes to now
        self.written: list[dict] = []  # every sheet, in order
        properties = dict(properties or {})
        custom = properties.pop("custom", {}) or {}
        for key, value in properties.items():
            setattr(self.book.properties, key, str(value))
        if custom:
            from openpyxl.packaging.custom import StringProperty

            for key, value in custom.items():
                self.book.custom_doc_props.append(StringProperty(name=str(key), value=str(value)))

    def append(self, frame: pd.DataFrame, *, sheet: str, labels: dict | None = None, formats: dict | None = None) -> None:
        """Add ``frame``'s rows to ``sheet`` (created with its header at the first call; a second
        sheet ``<sheet> (2)`` begins when Excel's 1,048,576 rows are reached).

        ``labels``: the header text per column (default the column name; ``\\n`` breaks a line);
        ``formats``: an Excel number format per column (e.g. :data:`MONEY`), or a list of one
        per row (a table of mixed figures).
        """
        state = self.sheets.get(sheet) or self._start(sheet, frame, labels or {}, formats or {})
        columns = []
        for name in state["columns"]:
            cells = _cells(frame[name])
            if name in state["formats"]:
                fmt = state["formats"][name]
                fmts = [fmt] * len(cells) if isinstance(fmt, str) else list(fmt)
                cells = [_formatted_cell(state["ws"], v, f) if f else v for v, f in zip(cells, fmts)]
            elif not pd.api.types.is_numeric_dtype(frame[name].dtype):
                cells = [_text_cell(state["ws"], v) if isinstance(v, str) and v.startswith("=") else v for v in cells]  # text, never a formula
            columns.append(cells)
        start = 0
        while start < len(frame):
            room = EXCEL_MAX_ROWS - state["rows"]
            if room <= 0:
                state = self._start(self._next_name(sheet), frame, labels or {}, formats or {}, key=sheet)
                room = EXCEL_MAX_ROWS - 1
            stop = min(len(frame), start + room)
            append = state["ws"].append
            for row in zip(*(col[start:stop] for col in columns)):
                append(row)
            state["rows"] += stop - start
            start = stop

    def notes(self, sheet: str, rows: list[tuple[str, str]], *, labels: tuple[str, str] = ("项目 Item", "内容 Value")) -> None:
        """A two-column sheet of notes (what the file is, its source, the model behind it)."""
        self.append(pd.DataFrame(rows, columns=["item", "value"]), sheet=sheet, labels=dict(zip(("item", "value"), labels)))

    def save(self, path: str | Path) -> None:
        from openpyxl.utils import get_column_letter

        for state in self.written:
            if state["rows"] > 1:
                state["ws"].auto_filter.ref = f"A1:{get_column_letter(len(state['columns']))}{state['rows']}"
        if not self.written:
            self.book.create_sheet("空 empty")
        self.book.save(str(path))

    def _next_name(self, sheet: str) -> str:
        n = 2
        while f"{sheet} ({n})"[:31] in {s["ws"].title for s in self.written}:
            n += 1
        return f"{sheet} ({n})"[:31]

    def _start(self, name: str, frame: pd.DataFrame, labels: dict, formats: dict, *, key: str | None = None) -> dict:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter

        ws = self.book.create_sheet(re.sub(r"[\[\]:*?/\\]", " ", name)[:31])
        ws.freeze_panes = "A2"
        columns = [str(c) for c in frame.columns]
        header = [str(labels.get(c, c)) for c in columns]
        sample = frame.head(200)
        for i, (col, text) in enumerate(zip(columns, header), start=1):
            values = sample[col].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else
                                     f"{v:,.0f}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)[:60])
            width = max([_display_width(line) for line in text.split("\n")] + [_display_width(v) for v in values] + [6])
            ws.column_dimensions[get_column_letter(i)].width = min(width + 2, 60)
        bold, fill = Font(bold=True), PatternFill("solid", fgColor="EEF3F8")
        wrap = Alignment(wrap_text=True, vertical="top")
        cells = []
        for text in header:
            cell = WriteOnlyCell(ws, excel_text(text))
            cell.font, cell.fill, cell.alignment = bold, fill, wrap
            cells.append(cell)
        ws.append(cells)
        state = {"ws": ws, "columns": columns, "formats": {c: f for c, f in formats.items() if c in columns}, "rows": 1}
        self.sheets[key or name] = state
        self.written.append(state)
        return state

def _formatted_cell(sheet, value, number_format):
    """A number shown with ``number_format``; text stays text (never a formula)."""
    from openpyxl.cell import WriteOnlyCell

    if value is None or isinstance(value, str):
        return _text_cell(sheet, value) if isinstance(value, str) and value.startswith("=") else value
    cell = WriteOnlyCell(sheet, value)
    cell.number_format = number_format
    return cell


def _text_cell(sheet, value: str):
    """A text cell, even when the text starts with '=' (openpyxl would write a formula)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    return cell


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV for Excel (UTF-8 with BOM, :func:`csv_ready`) through a temporary
    file and an atomic rename; temporary files of a killed earlier run are swept first."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
            CsvStream(fh).write(frame)
    except BaseException:
        _drop(tmp)
        raise
    _finish(tmp, path)
    return path


def write_xlsx_atomic(sheets: dict, path: str | Path, *, notes: list[tuple[str, str]] | None = None, properties: dict | None = None) -> Path:
    """Write a workbook of several tables through a temporary file and an atomic rename.

    Parameters
    ----------
    sheets : dict
        ``{sheet name: frame}`` or ``{sheet name: (frame, labels, formats)}`` (see
        :meth:`XlsxBook.append`), written in order, one sheet each.
    notes : list of (str, str), optional
        A last sheet "说明 About" of items and values.
    """
    path = Path(path)
    book = XlsxBook(properties=properties)
    for name, spec in sheets.items():
        frame, labels, formats = spec if isinstance(spec, tuple) else (spec, None, None)
        if len(frame.columns):
            book.append(frame, sheet=name, labels=labels, formats=formats)
    if notes:
        book.notes("说明 About", notes)
    tmp = _temporary(path)
    try:
        book.save(tmp)
    except BaseException:
        _drop(tmp)
        raise
    _finish(tmp, path)
    return path


def write_table_atomic(frame: pd.DataFrame, path: str | Path, **xlsx) -> Path:
    """Write one table by its extension: Parquet, CSV for Excel or a one-sheet workbook
    (``xlsx``: ``sheet``, ``labels``, ``formats``, ``notes``, ``properties``)."""
    kind = table_format(path)
    if kind == "parquet":
        return write_atomic(frame, path)
    if kind == "csv":
        return write_csv_atomic(frame, path)
    sheet = xlsx.pop("sheet", "data")
    return write_xlsx_atomic({sheet: (frame, xlsx.pop("labels", None), xlsx.pop("formats", None))}, path, **xlsx)
