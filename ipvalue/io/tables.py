"""Read patent tables (CSV / Parquet / Excel), map their headers, validate; write outputs atomically."""

from __future__ import annotations

import codecs
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from ipvalue.exceptions import ColumnError, EmptyInputError, InputFileError, SpecError
from ipvalue.frame import BLANK_CHARS, COLUMN_BY_NAME, REQUIRED, ValidationResult, on_unique, suggest, validate_patent_frame

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
            return cls._from_dict(yaml.safe_load(Path(which).read_text(encoding="utf-8")), str(which))
        if which == "auto":
            cn, en = cls.load("cn"), cls.load("en")
            values = {k: {**en.values.get(k, {}), **cn.values.get(k, {})} for k in {*cn.values, *en.values}}
            return cls("auto", {**cn.columns, **en.columns}, values)
        shipped = resources.files("ipvalue") / "mappings" / f"{which}.yaml"
        if not shipped.is_file():
            raise SpecError(f"Unknown column mapping {which!r}. Fix: use 'auto', 'cn', 'en', a YAML path or a dict.")
        return cls._from_dict(yaml.safe_load(shipped.read_text(encoding="utf-8")), which)

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

    def apply(self, raw: pd.DataFrame, *, source: str = "input") -> tuple[pd.DataFrame, list[str]]:
        """Rename headers and translate values. Returns the mapped frame and notes of what was done."""
        notes: list[str] = []
        rename: dict[str, str] = {}
        taken: set[str] = set()
        folded = {c: _fold_header(c) for c in raw.columns}
        # Canonical names first, then the mapping in its declared order of preference.
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
        frame = pd.read_excel(path, sheet_name=sheet_name, dtype=object)
    elif suffix in (".csv", ".txt", ".tsv"):
        if path.stat().st_size == 0:
            raise EmptyInputError(f"{path} is an empty file. Fix: export the table again with its header row.")
        sep = "\t" if suffix == ".tsv" else None
        enc = detect_encoding(path, encoding)
        try:
            frame = pd.read_csv(path, dtype=str, encoding=enc, sep=sep, engine="python" if sep is None else "c", keep_default_na=True)
        except UnicodeDecodeError as exc:
            raise EmptyInputError(
                f"{path} could not be decoded as {enc} ({exc.reason} at byte {exc.start}). Fix: pass encoding= (e.g. 'gbk', 'big5') or save it as UTF-8."
            ) from None
        if enc != ENCODINGS[0]:
            notes.append(f"{path.name} decoded as {enc}")
    else:
        raise InputFileError(f"Unsupported file type {suffix!r} for {path}. Fix: use .csv, .parquet or .xlsx.")
    if len(frame) == 0:
        raise EmptyInputError(f"{path} has a header but no data rows. Fix: check the export or its filter.")
    return frame, notes


def read_patents(
    path: str | Path,
    *,
    mapping: str | Path | dict = "auto",
    encoding: str | None = None,
    sheet_name=0,
    strict: bool = False,
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

    Returns
    -------
    ValidationResult
        ``valid`` PatentFrame, ``quarantine`` rows with reasons, ``problems``, ``notes``.
    """
    raw, notes = read_table(path, encoding=encoding, sheet_name=sheet_name)
    mapped, map_notes = ColumnMapping.load(mapping).apply(raw, source=str(path))
    result = validate_patent_frame(mapped, strict=strict, source=str(path))
    # The quarantine keeps the rows exactly as the file had them, under their own headers.
    quarantine = raw.loc[result.quarantine.index].copy()
    quarantine.insert(0, "row", result.quarantine["row"].to_numpy())
    quarantine.insert(1, "reasons", result.quarantine["reasons"].to_numpy())
    result.quarantine = quarantine
    result.notes = notes + map_notes + result.notes
    for n in result.notes:
        logger.info("%s: %s", path, n)
    return result


def write_atomic(frame: pd.DataFrame, path: str | Path, **kwargs) -> Path:
    """Write ``frame`` to Parquet or CSV (by suffix) through a temporary file and an atomic rename.

    A reader never sees a half-written file, and a crash leaves the old file (or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False, **kwargs)
        elif path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8", **kwargs)
        else:
            raise ValueError(f"Unsupported output type {path.suffix!r} for {path}. Fix: use .parquet or .csv.")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a text file (report, JSON) atomically, UTF-8."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
