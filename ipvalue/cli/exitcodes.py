"""Exit codes of the ``ipvalue`` command, for batch schedulers, and the argument types that turn a
bad value into a usage error (exit 2) before any work starts.

Standard library only: every command's parser uses it, and ``ipvalue --help`` must not wait for
pandas or scikit-learn."""

from __future__ import annotations

import argparse
import datetime

EXIT_OK = 0  # success
EXIT_PARTIAL = 1  # finished, but rows were quarantined or a check failed (outputs written)
EXIT_USAGE = 2  # bad arguments
EXIT_INPUT = 3  # input error: a file, application or model URI the user gave is missing or invalid
EXIT_CONFIG = 4  # configuration error: a YAML spec, assumption set or experiment is invalid
EXIT_INTERNAL = 70  # a bug: please report it with the traceback (ipvalue -v)


def checked(check, convert=str):
    """An argparse type: ``convert`` the text, then ``check`` it; a ValueError becomes a usage error."""

    def parse(text: str):
        try:
            value = convert(text)
            check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return parse


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (chunk sizes, workers, partitions)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1. Got {text!r}.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1. Got {text!r}.")
    return value


def iso_date(text: str) -> str:
    """A calendar date written YYYY-MM-DD."""
    try:
        return datetime.datetime.fromisoformat(text).date().isoformat() if len(text) == 10 else _bad_date(text)
    except ValueError:
        return _bad_date(text)


def _bad_date(text: str):
    raise argparse.ArgumentTypeError(f"must be a date written YYYY-MM-DD. Got {text!r}.")


def fraction(text: str) -> float:
    """A share in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], e.g. 0.2 for 20 %. Got {text!r}.") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], e.g. 0.2 for 20 %. Got {text!r}.")
    return value


class DeferredChoices:
    """The allowed values of an option, read from the library only when argparse needs them (to
    check a value or to write an error): the parser is built without importing the library.

    Give the option a ``metavar`` too: without one, argparse lists the choices while it builds
    the parser, and the library is imported then.

    Parameters
    ----------
    load : callable
        Returns the allowed values, importing the module that defines them.

    Examples
    --------
    >>> roles = DeferredChoices(lambda: ("officer", "reviewer"))
    >>> "officer" in roles, list(roles)
    (True, ['officer', 'reviewer'])
    """

    def __init__(self, load):
        self.load = load

    def __contains__(self, value) -> bool:
        return value in self.load()

    def __iter__(self):
        return iter(self.load())
