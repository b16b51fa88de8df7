"""Exceptions raised by ipvalue.

Every error names the argument or column, the value received and the fix (STYLE rule 2).
Bad values raise subclasses of :class:`ValueError`; unfitted use raises scikit-learn's
:class:`~sklearn.exceptions.NotFittedError` so that sklearn tooling recognises it. That one is
imported from scikit-learn on first use (``from ipvalue.exceptions import NotFittedError``), not
with this module: every command imports this module, most never need scikit-learn (about 1 s).
"""

from __future__ import annotations

__all__ = [
    "ApplicationError",
    "AssumptionError",
    "AuditStoreError",
    "ColumnError",
    "ComparablesError",
    "DomainError",
    "EmptyInputError",
    "InputError",
    "InputFileError",
    "ModelNotFoundError",
    "ModelStorageError",
    "NotFittedError",
    "OverrideError",
    "PatentFrameError",
    "SpecError",
]


class InputError(ValueError):
    """Base of the errors in what a user supplied (a file, an application, a model URI): the CLI
    exits with code 3 and one line saying what to fix."""


class PatentFrameError(InputError):
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


class InputFileError(PatentFrameError):
    """An input file cannot be read: an unsupported type, ragged rows, an unclosed quote, a
    mis-decoded text, a fake ``.xls``; the message names the line and the fix."""


class DomainError(InputError):
    """A number or date is outside its documented domain (:mod:`ipvalue.domains`), not finite,
    or of the wrong type (a boolean where a number is expected)."""


class AuditStoreError(RuntimeError):
    """The audit store cannot be opened, written or trusted: read-only, corrupt, truncated, a
    refused update or delete, or a broken hash chain. The message says what to do."""


class SpecError(ValueError):
    """A feature-set spec, experiment file or other YAML configuration is invalid."""


class AssumptionError(ValueError):
    """An assumption set (rates, terms, thresholds) is invalid or out of its allowed range."""


class ApplicationError(InputError):
    """A loan application file is invalid; the message names the field."""


class OverrideError(InputError):
    """A manual override is incomplete: every override needs a reason and an officer."""


class ModelNotFoundError(InputError):
    """A model URI does not name a registered model version (unknown name, alias or version), or
    is not a registry URI at all (models load only from the registry)."""


class ModelStorageError(InputError):
    """A registered version's files are not where the registry keeps them: its storage location is
    outside its experiment's artifact root, or a path inside the model leads out of its folder, or
    a file it names is missing. Refused before anything is unpickled."""


def __getattr__(name: str):
    """``NotFittedError``, scikit-learn's, imported when first asked for."""
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError

        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
