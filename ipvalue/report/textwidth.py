"""How wide text prints, in em of the report's font (Noto Sans CJK): what the table layout and
the charts' margins are computed from. An estimate, slightly generous, so that a column sized
from it holds its content on one line."""

from __future__ import annotations

import re
import unicodedata

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@#+-]*$")


def char_em(ch: str) -> float:
    """The advance of one character in em of Noto Sans CJK (an estimate, slightly generous)."""
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    if ch == " ":
        return 0.26
    if ch.isdigit():
        return 0.57
    if ch in ".,:;'!|()[]":
        return 0.3
    if ch.isupper():
        return 0.68
    return 0.55


def text_em(text: str) -> float:
    """The width of ``text`` on one line, in em."""
    return sum(char_em(c) for c in text)


def longest_token_em(text: str) -> float:
    """The widest piece of ``text`` a line may not break inside (a word, a number, an
    identifier), in em; CJK text breaks between characters."""
    widest = 0.0
    for token in re.split(r"[\s\u3000]+", text):
        run = 0.0
        for ch in token:
            if unicodedata.east_asian_width(ch) in ("W", "F"):
                widest, run = max(widest, run, 1.0), 0.0
            else:
                run += char_em(ch)
        widest = max(widest, run)
    return widest


def is_identifier(text: str) -> bool:
    """An identifier-like cell (a patent id, a reference): kept on one line."""
    return bool(_IDENTIFIER.match(text)) and any(c.isdigit() for c in text)
