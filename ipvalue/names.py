"""One normaliser for patent ids and owner / borrower names, used wherever they are compared.

Policy (the same in files, applications, pledge registers and the service):

* **NFKC** first: full-width letters, digits and punctuation become half-width
  (``（北京）`` → ``(北京)``, ``Ｇ０６Ｆ１７／３０`` → ``G06F17/30``), the ideographic space
  ``U+3000`` becomes a space.
* **Invisible format characters** that copy-paste and Excel add (zero-width space / joiners
  ``U+200B``-``U+200D``, word joiner ``U+2060``, BOM ``U+FEFF``, soft hyphen ``U+00AD``) are
  **removed**, and the caller records a note: they carry no meaning and an id holding one never
  matches.
* **Control characters** (C0 / C1 other than tab, CR, LF, e.g. NUL) and **bidirectional
  controls** (``U+202A``-``U+202E`` such as RLO, ``U+2066``-``U+2069``, ``U+200E``/``U+200F``,
  ``U+061C``) are **refused**: :func:`forbidden_characters` finds them so that the row is
  quarantined with the column named. They mean a corrupt export or a name made to display as
  something it is not, and a valuation must not guess which.
* White space runs become one space and the ends are stripped.
* **Ids** (:func:`normalise_id`) are also upper-cased and lose inner spaces:
  ``cn112345678b`` and ``CN 112345678 B`` are ``CN112345678B``.
* **Names** compare by :func:`name_key`: no spaces at all, case-folded, and the company-form
  variants 有限责任公司 → 有限公司 folded, so ``某某科技（北京）有限公司``,
  ``某某科技 (北京) 有限公司`` and ``某某科技(北京)有限责任公司`` have one key. Names are shown as
  :func:`normalise_text` gives them; only the comparison uses the key.
"""

from __future__ import annotations

import functools

import pandas as pd

__all__ = [
    "FORBIDDEN_CHARS",
    "INVISIBLE_CHARS",
    "forbidden_characters",
    "has_invisible",
    "name_key",
    "normalise_id",
    "normalise_text",
    "same_name",
]

#: Removed silently-with-a-note: zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen.
INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_C0 = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\r\n")
_C1 = "".join(chr(c) for c in range(0x7F, 0xA0))
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
#: Refused: C0 / C1 control characters (not tab, CR, LF) and bidirectional controls.
FORBIDDEN_CHARS = _C0 + _C1 + _BIDI
_FORBIDDEN_RE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in FORBIDDEN_CHARS) + "]"
_INVISIBLE_RE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in INVISIBLE_CHARS) + "]"
_BLANKS_RE = r"[ \t\r\n\x0b\x0c]+"
#: Company-form variants folded in :func:`name_key` (longest first).
#: Legal-form variants folded into one spelling before names are compared (regex, replacement),
#: applied to the case-folded, NFKC-normalised name.
COMPANY_FORMS = (
    ("有限责任公司", "有限公司"),
    (r"\bcorporation\b", "corp"),
    (r"\bincorporated\b", "inc"),
    (r"\bcompany\b", "co"),
    (r"\blimited\b", "ltd"),
)
#: What a name key drops: white space and punctuation (after NFKC, so full-width marks are ASCII).
_NAME_PUNCTUATION_RE = r"[\s\.,;:'\"`·、，。\-_/&]+"


def _as_series(values) -> tuple[pd.Series, bool]:
    if isinstance(values, pd.Series):
        return values, False
    return pd.Series([values], dtype=object), True


def _ret(s: pd.Series, scalar: bool):
    return s.iloc[0] if scalar else s


#: A Series up to this many values goes through the remembered single texts: pandas' fixed cost per
#: string operation (a dozen per name key) outweighs the work on a few texts, and a service compares
#: the same borrower and owner names at every valuation.
SHORT_SERIES = 64


def _scalars_remembered(dtype: str):
    """Decorate ``fn`` so that its answer for a single text is remembered (up to 4,096 texts).

    A scalar goes through the same column code (and regular-expression engine) as a Series, once
    per text, so a borrower's name and its patents' owner names are compared with one policy, at a
    dictionary lookup's cost when they repeat. A Series of at most :data:`SHORT_SERIES` values is
    answered value by value the same way (missing values stay missing), as a Series of ``dtype``
    (what the column code returns) with the input's index and name; a longer one runs the column
    code once.
    """

    def decorate(fn):
        remembered = functools.lru_cache(maxsize=4096)(fn)

        def one(value):
            return remembered(value) if isinstance(value, str) else fn(value)

        @functools.wraps(fn)
        def normaliser(values):
            if isinstance(values, pd.Series) and len(values) <= SHORT_SERIES:
                missing = values.isna().to_numpy()
                answers = [None if gone else one(v) for v, gone in zip(values.tolist(), missing, strict=True)]
                out = pd.Series(answers, index=values.index, name=values.name, dtype=object)
                return out.fillna(False).astype(bool) if dtype == "bool" else out.astype(dtype)
            return one(values) if not isinstance(values, pd.Series) else fn(values)

        return normaliser

    return decorate


@_scalars_remembered("bool")
def forbidden_characters(values) -> pd.Series | bool:
    """True where a text holds a control or bidirectional-control character (to be refused).

    Parameters
    ----------
    values : str or pandas.Series of str
        Missing values give False.
    """
    s, scalar = _as_series(values)
    text = s.astype("str").where(s.notna())
    found = text.str.contains(_FORBIDDEN_RE, regex=True).fillna(False).astype(bool)
    return _ret(found, scalar)


@_scalars_remembered("bool")
def has_invisible(values) -> pd.Series | bool:
    """True where a text holds an invisible format character that :func:`normalise_text` removes."""
    s, scalar = _as_series(values)
    text = s.astype("str").where(s.notna())
    return _ret(text.str.contains(_INVISIBLE_RE, regex=True).fillna(False).astype(bool), scalar)


@_scalars_remembered("str")
def normalise_text(values) -> pd.Series | str:
    """NFKC, invisible characters removed, white space runs made one space, ends stripped.

    Control and bidi characters are left in place (check :func:`forbidden_characters` first);
    blanks become missing.

    Examples
    --------
    >>> normalise_text("某某科技（北京）有限公司\u200b ")
    '某某科技(北京)有限公司'
    """
    s, scalar = _as_series(values)
    text = s.astype("str").where(s.notna())
    out = (
        text.str.normalize("NFKC")
        .str.replace(_INVISIBLE_RE, "", regex=True)
        .str.replace(_BLANKS_RE, " ", regex=True)
        .str.strip()
    )
    out = out.where(out.ne("") & out.notna())
    return _ret(out, scalar)


@_scalars_remembered("str")
def normalise_id(values) -> pd.Series | str:
    """A patent or application id in canonical form: normalised text, upper case, no spaces.

    Examples
    --------
    >>> normalise_id("cn 112345678ｂ")
    'CN112345678B'
    """
    s, scalar = _as_series(values)
    out = normalise_text(s).str.replace(" ", "", regex=False).str.upper()
    return _ret(out.where(out.ne("")), scalar)


@_scalars_remembered("str")
def name_key(values) -> pd.Series | str:
    """The key two owner / borrower names are compared by (see the module notes).

    Examples
    --------
    >>> name_key("某某科技 (北京) 有限责任公司") == name_key("某某科技（北京）有限公司")
    True
    """
    s, scalar = _as_series(values)
    out = normalise_text(s).str.casefold().str.replace(r"^the\s+", "", regex=True)
    for variant, canonical in COMPANY_FORMS:
        out = out.str.replace(variant, canonical, regex=True)
    # Removing spaces can join a combining mark to a letter, so NFKC runs again after folding.
    out = out.str.replace(_NAME_PUNCTUATION_RE, "", regex=True)
    while out.str.contains("()", regex=False).fillna(False).any():  # empty brackets, nested ones too: '(())' is ''
        out = out.str.replace("()", "", regex=False)
    out = out.str.normalize("NFKC")
    return _ret(out.where(out.ne("")), scalar)


def same_name(a, b) -> pd.Series | bool:
    """True where two names have the same :func:`name_key` (missing never matches).

    Parameters
    ----------
    a, b : str or pandas.Series
        Series are aligned by position.
    """
    ka, kb = name_key(a), name_key(b)
    if isinstance(ka, pd.Series) or isinstance(kb, pd.Series):
        ka = ka if isinstance(ka, pd.Series) else pd.Series([ka] * len(kb), dtype=object)
        kb = kb if isinstance(kb, pd.Series) else pd.Series([kb] * len(ka), dtype=object)
        return pd.Series((ka.to_numpy() == kb.to_numpy()) & ka.notna().to_numpy() & kb.notna().to_numpy(), index=ka.index)
    return bool(ka is not None and not pd.isna(ka) and ka == kb)
