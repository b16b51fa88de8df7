"""Exceptions raised by ipvalue.

Every error names the argument or column, the value received and the fix (STYLE rule 2).
Bad values raise subclasses of :class:`ValueError`; unfitted use raises scikit-learn's
:class:`~sklearn.exceptions.NotFittedError` so that sklearn tooling recognises it.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError

__all__ = [
    "ApplicationError",
    "AssumptionError",
    "ColumnError",
    "ComparablesError",
    "EmptyInputError",
    "NotFittedError",
    "OverrideError",
    "PatentFrameError",
    "SpecError",
]


class PatentFrameError(ValueError):
    """Rows of a patent table break the PatentFrame contract (raised in ``strict`` mode).

    Attributes
    ----------
    problems : pandas.DataFrame
        One row per problem: ``row``, ``patent_id``, ``column``, ``value``, ``problem``, ``fix``.
    """

    def __init__(self, message: str, problems=None):
        super().__init__(message)
        self.problems = problems


class ColumnError(PatentFrameError):
    """Required columns are missing or columns cannot be mapped."""


class ComparablesError(PatentFrameError):
    """Rows of a comparable-transactions file are invalid; ``problems`` lists row, column, value, fix."""


class EmptyInputError(PatentFrameError):
    """The input file or table has no data rows."""


class SpecError(ValueError):
    """A feature-set spec, experiment file or other YAML configuration is invalid."""


class AssumptionError(ValueError):
    """An assumption set (rates, terms, thresholds) is invalid or out of its allowed range."""


class ApplicationError(ValueError):
    """A loan application file is invalid; the message names the field."""


class OverrideError(ValueError):
    """A manual override is incomplete: every override needs a reason and an officer."""
