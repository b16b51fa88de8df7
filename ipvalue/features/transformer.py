"""PatentFeatureBuilder: the scikit-learn transformer from a PatentFrame to a feature matrix."""

from __future__ import annotations

import copy
import functools
import json
import logging
import pickle
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import load_yaml
from ipvalue.exceptions import SpecError
from ipvalue.features.builders import BUILDERS, READS, BuildContext, normalise_ipc
from ipvalue.features.cohort import SOURCES, CohortReference, cohort_rows, oecd_quantile_points
from ipvalue.features.owners import LayeredOwnerBook, build_owners, check_owner_book
from ipvalue.features.spec import FeatureSpec
from ipvalue.frame import COLUMNS, as_patent_frame
from ipvalue.io import default_data_dir, load_ipc_concordance, load_oecd_cohorts
from ipvalue.io.public import OECD_FILE

logger = logging.getLogger(__name__)

GROUP_BUILDERS = {**BUILDERS, "owners": build_owners}
#: What each group reads of its context (see :data:`ipvalue.features.builders.READS`).
GROUP_READS = {**READS, "owners": ("owner_book", "valuation_date", "owner_leave_out", "params")}

_SHARED: ContextVar[dict | None] = ContextVar("ipvalue_shared_feature_groups", default=None)


@contextmanager
def shared_feature_groups():
    """Within the block, a builder group's columns are computed once for every feature builder
    that needs them on the same patents and context (:data:`GROUP_READS`): a valuation builds the
    scorecard's, the renewal model's and the value model's features from one frame, and they share
    the claims, family, citation, life, industry and event columns. Outside the block nothing is
    kept; blocks nest (the inner one starts empty)."""
    token = _SHARED.set({"groups": {}, "fingerprints": {}})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _table_content(table: pd.DataFrame) -> bytes:
    """A table's column names, row labels and values as bytes (pickled): equal bytes, equal tables.
    A few times cheaper than hashing each column on a valuation's few rows."""
    return pickle.dumps((list(table.columns), table.index.to_numpy(), table.to_numpy(dtype=object)), protocol=pickle.HIGHEST_PROTOCOL)


def _fingerprint(value, seen: dict):
    """A hashable stand-in for a context field's content (tables by their pickled content, once per object)."""
    if value is None or isinstance(value, str | int | float | pd.Timestamp):
        return value
    if id(value) not in seen:
        if isinstance(value, LayeredOwnerBook):  # the base by identity (kept alive with the fingerprint, never changed), the top by content
            text = b"layered:%d:" % id(value.base) + _fingerprint(value.top, seen)
        elif isinstance(value, pd.DataFrame):
            text = _table_content(value)
        else:
            text = json.dumps(value, sort_keys=True, default=str).encode()
        seen[id(value)] = (value, text)  # the object is kept alive with its fingerprint, so its id is not reused
    return seen[id(value)][1]


#: The OECD cohort table's rows of a spec's variables and their quantile points, per process: keyed by
#: the file's path, size and modification time (an edited file is read again) and the variables.
_OECD_REFERENCES: dict = {}


def _oecd_reference(data_dir: Path, variables: frozenset) -> tuple[pd.DataFrame, dict]:
    """The OECD cohort table of ``data_dir`` restricted to ``variables`` and, per variable, its
    :func:`~ipvalue.features.cohort.oecd_quantile_points`: read and indexed once, not at every fit
    (a valuation fits its scorecard's cohort references on its own patents)."""
    path = (data_dir / OECD_FILE).resolve()
    if not path.is_file():
        return load_oecd_cohorts(data_dir), {}  # raises its FileNotFoundError
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, variables)
    if key not in _OECD_REFERENCES:
        oecd = load_oecd_cohorts(data_dir)
        table = oecd[oecd["variable"].isin(variables)].reset_index(drop=True)
        _OECD_REFERENCES.clear()  # one version of the file is kept
        _OECD_REFERENCES[key] = (table, {v: oecd_quantile_points(table, v) for v in variables})
    return _OECD_REFERENCES[key]


def _oecd_points(oecd: pd.DataFrame, variable: str) -> dict:
    """The quantile points of ``variable``: from :data:`_OECD_REFERENCES` when ``oecd`` is the
    table read there, else computed from ``oecd`` (a table given to the builder)."""
    for table, points in _OECD_REFERENCES.values():
        if oecd is table:
            return points[variable]
    return oecd_quantile_points(oecd, variable)


@functools.lru_cache(maxsize=64)
def _category_dtype(categories: tuple) -> pd.CategoricalDtype:
    """The dtype of a category feature (checked once per process, not at every build)."""
    return pd.CategoricalDtype(list(categories))


class FeatureWarning(UserWarning):
    """Missing values or unknown categories were handled by the spec's policy."""


@dataclass
class FeatureResult:
    """A feature matrix and the report of what the missing-value policies did.

    Attributes
    ----------
    matrix : pandas.DataFrame, shape (n_patents, n_features)
        Columns in spec order; floats, and pandas categoricals with the spec's categories.
    report : pandas.DataFrame
        One row per feature with something to say: ``feature, missing, policy, action,
        unknown_categories`` and, for percentiles, the count of each reference source.
    extras : pandas.DataFrame
        Columns built alongside that are not model inputs (``expiry_date``, ``industry_code``).
    """

    matrix: pd.DataFrame
    report: pd.DataFrame
    extras: pd.DataFrame


class PatentFeatureBuilder(TransformerMixin, BaseEstimator):
    """Build the features of a spec (``features/*.yaml``) as of a valuation date.

    Parameters
    ----------
    spec : str, Path, dict or FeatureSpec, default="core-v1"
        The feature-set spec: a name in ``features/``, a YAML path or a parsed spec.
    valuation_date : date-like, default=None
        Nothing dated after it is used. ``None`` means today, fixed at ``fit``.
    data_dir : str or Path, default=None
        Folder with the public reference data (IPC concordance, OECD cohorts); default
        :func:`ipvalue.io.default_data_dir`. Without it, sectors come from a coarse IPC map, there
        are no technology fields, and percentiles use only the fitted data.
    concordance, oecd_cohorts : pandas.DataFrame, default=None
        Reference tables given directly (they take precedence over ``data_dir``).
    owner_book : pandas.DataFrame, default=None
        The owners' portfolios with outcomes, for the ``owners`` builder (see
        :mod:`ipvalue.features.owners`). Without it, owner-history features are missing.

    Attributes
    ----------
    spec_ : FeatureSpec
    valuation_date_ : pandas.Timestamp
    references_ : dict of str to CohortReference
        Fitted cohort references of the percentile features.
    medians_ : dict of str to float
        Fitted medians of features whose missing policy is 'median'.
    reference_notes_ : list of str
        Which reference tables were found.

    Examples
    --------
    >>> from ipvalue.synthetic import make_demo_portfolio
    >>> patents = make_demo_portfolio(50, seed=0).patents
    >>> builder = PatentFeatureBuilder(valuation_date="2026-06-30").fit(patents)
    >>> builder.transform(patents).shape[0]
    50
    """

    def __init__(self, spec="core-v1", *, valuation_date=None, data_dir=None, concordance=None, oecd_cohorts=None, owner_book=None):
        self.spec = spec
        self.valuation_date = valuation_date
        self.data_dir = data_dir
        self.concordance = concordance
        self.oecd_cohorts = oecd_cohorts
        self.owner_book = owner_book

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y=None) -> "PatentFeatureBuilder":
        """Learn the cohort references (and medians) from ``X``; nothing else is learned."""
        self._fit(self._prepare(X))
        return self

    def fit_transform(self, X: pd.DataFrame, y=None, **fit_params) -> pd.DataFrame:
        """``fit(X).transform(X)``, building the base features once."""
        return self.fit_build(X).matrix

    def fit_build(self, X: pd.DataFrame) -> FeatureResult:
        """``fit(X).build(X)``, building the base features once (the matrix, the missing-value
        report and the extras such as ``expiry_date``)."""
        frame, base = self._fit(self._prepare(X))
        return self._warn(self._assemble(frame, base))

    def _prepare(self, X) -> pd.DataFrame:
        self.spec_ = FeatureSpec.load(self.spec)
        self.valuation_date_ = pd.Timestamp(self.valuation_date if self.valuation_date is not None else pd.Timestamp.today()).normalize()
        self.owner_leave_out_ = "fold"  # fitting learns from the book's outcomes: out of fold
        self._load_references()
        return self._as_frame(X)

    def _fit(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        base = self._build_base(frame)
        spec = self.spec_
        oecd = self.oecd_
        self.references_ = {}
        for f in spec.features:
            if f.builder != "percentile":
                continue
            points = None
            if oecd is not None and f.oecd_variable:
                points = _oecd_points(oecd, f.oecd_variable)
            ref = CohortReference(min_size=int(spec.cohort["min_size"]), oecd=points)
            self.references_[f.name] = ref.fit(base[f.of], base["filing_year"], base["tech_field"])
        self.medians_ = {f.name: float(np.nanmedian(base[f.name])) for f in spec.features if f.missing == "median" and f.builder != "percentile"}
        self.feature_names_in_ = np.array([c.name for c in COLUMNS], dtype=object)
        return frame, base

    def at_date(self, valuation_date, *, owner_book: pd.DataFrame | None = None) -> "PatentFeatureBuilder":
        """A copy of this fitted builder that builds the features as of another date.

        What was fitted (cohort references, medians: they describe the reference population) is
        kept; the valuation date is replaced, and so is the owner book when one is given (raw
        :data:`~ipvalue.features.owners.OWNER_BOOK_COLUMNS` or checked). A patent that is itself
        in the owner book leaves only itself out of its owner statistics (``leave_out='self'``):
        at a valuation no outcome is learnt, so its owner's other patents all count.

        Parameters
        ----------
        valuation_date : date-like
            Required: nothing dated after it is used.
        owner_book : pandas.DataFrame or LayeredOwnerBook, default=None
            The owners' patents with their lapse dates as known at ``valuation_date``; default:
            the fitted builder's book.

        Returns
        -------
        PatentFeatureBuilder, fitted; this builder is not changed.
        """
        check_is_fitted(self, "references_")
        when = pd.to_datetime(valuation_date, errors="coerce") if valuation_date is not None else pd.NaT
        if pd.isna(when) or isinstance(when, pd.DatetimeIndex):
            raise ValueError(f"The 'valuation_date' of PatentFeatureBuilder.at_date must be one date (YYYY-MM-DD). Got {valuation_date!r}.")
        dated = copy.copy(self)
        dated.valuation_date = dated.valuation_date_ = pd.Timestamp(when).normalize()
        dated.owner_leave_out_ = "self"
        uses_owners = any(f.builder == "owners" for f in self.spec_.features)
        notes = [n for n in self.reference_notes_ if not n.startswith("owner book:")]
        if owner_book is not None and uses_owners:
            dated.owner_book = owner_book
            checked = isinstance(owner_book, LayeredOwnerBook) or "owner_key" in owner_book.columns
            dated.owner_book_ = owner_book if checked else check_owner_book(owner_book)
        if uses_owners:
            book = getattr(dated, "owner_book_", None)
            notes.append(f"owner book: {len(book)} patents" if book is not None else "owner book: none (owner-history features missing)")
        dated.reference_notes_ = [*notes, f"features as of {dated.valuation_date_.date()} (fitted as of {self.valuation_date_.date()})"]
        return dated

    def _load_references(self) -> None:
        params = self.spec_.builders
        self.terms_, _ = load_yaml(params.get("life", {}).get("terms", "statutory-terms"))
        self.market_size_, _ = load_yaml(params.get("family", {}).get("market_size", "market-size"))
        self.sector_prefixes_ = load_yaml("ipc-sectors")[0]["prefix_sector"]
        industry_map = params.get("industry", {}).get("industry_map")
        self.industry_map_ = None
        if industry_map:
            table = pd.read_csv(industry_map, dtype=str)
            self.industry_map_ = table.assign(ipc_prefix=normalise_ipc(table["ipc"]).str.rstrip("/"))
        notes = []
        concordance, oecd = self.concordance, self.oecd_cohorts
        variables = frozenset(f.oecd_variable for f in self.spec_.features if f.oecd_variable)
        if concordance is None or oecd is None:
            try:
                data_dir = Path(self.data_dir) if self.data_dir is not None else default_data_dir()
                concordance = load_ipc_concordance(data_dir) if concordance is None else concordance
                oecd = _oecd_reference(data_dir, variables)[0] if oecd is None else oecd
            except FileNotFoundError as exc:
                notes.append(f"public reference data not found ({exc}); sectors from the coarse IPC map, no technology fields, no OECD cohorts")
        self.concordance_ = concordance
        if oecd is not None and not any(oecd is table for table, _ in _OECD_REFERENCES.values()):  # a table given: its rows of the variables
            oecd = oecd[oecd["variable"].isin(variables)].reset_index(drop=True)
        self.oecd_ = oecd
        notes.append(f"IPC concordance: {'WIPO 35 fields' if concordance is not None else 'coarse sector map'}")
        notes.append(f"OECD cohorts: {'yes' if self.oecd_ is not None else 'no'}")
        uses_owners = any(f.builder == "owners" for f in self.spec_.features)
        self.owner_book_ = check_owner_book(self.owner_book) if self.owner_book is not None and uses_owners else None
        if uses_owners:
            notes.append(f"owner book: {len(self.owner_book_)} patents" if self.owner_book_ is not None else "owner book: none (owner-history features missing)")
        self.reference_notes_ = notes
        for n in notes:
            logger.info(n)

    # -- building --------------------------------------------------------------------------

    def _context(self) -> BuildContext:
        return BuildContext(
            valuation_date=self.valuation_date_, terms=self.terms_, market_size=self.market_size_,
            concordance=self.concordance_, sector_prefixes=self.sector_prefixes_, industry_map=self.industry_map_,
            owner_book=getattr(self, "owner_book_", None), owner_leave_out=getattr(self, "owner_leave_out_", "fold"), params=self.spec_.builders,
        )

    def _as_frame(self, X) -> pd.DataFrame:
        return as_patent_frame(X, passthrough=self.spec_.passthrough, source="PatentFeatureBuilder input")

    def _build_base(self, frame: pd.DataFrame) -> pd.DataFrame:
        ctx = self._context()
        groups = [g for g in GROUP_BUILDERS if any(f.builder == g for f in self.spec_.features) or g in ("life", "industry")]
        shared = _SHARED.get()
        if shared is None:
            parts = [GROUP_BUILDERS[g](frame, ctx) for g in groups]
        else:
            rows = _table_content(frame[[c.name for c in COLUMNS]])
            parts = []
            for g in groups:
                key = (g, rows, tuple(_fingerprint(getattr(ctx, name), shared["fingerprints"]) for name in GROUP_READS[g]))
                if key not in shared["groups"]:
                    shared["groups"][key] = GROUP_BUILDERS[g](frame, ctx)
                parts.append(shared["groups"][key])
        base = pd.concat(parts, axis=1)
        return base.assign(**{c: frame[c].astype("float64") for c in self.spec_.passthrough})

    def build(self, X: pd.DataFrame) -> FeatureResult:
        """The feature matrix of ``X`` and the report of the missing-value policies. Pure: ``X`` is
        not modified, and the same input gives the same output."""
        check_is_fitted(self, "references_")
        frame = self._as_frame(X)
        return self._assemble(frame, self._build_base(frame))

    def _assemble(self, frame: pd.DataFrame, base: pd.DataFrame) -> FeatureResult:
        columns, rows = {}, []
        cohorts = cohort_rows(base["filing_year"], base["tech_field"]) if any(f.builder == "percentile" for f in self.spec_.features) else None
        for f in self.spec_.features:
            info = {"feature": f.name, "policy": f.missing}
            if f.builder == "percentile":
                values, source = self.references_[f.name].transform(base[f.of], base["filing_year"], base["tech_field"], cohorts=cohorts)
                info.update({s: int((source == s).sum()) for s in SOURCES})
            else:
                values = base[f.name]
            if f.dtype == "category":
                given = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
                col = pd.Categorical(given, dtype=_category_dtype(f.categories))  # a value outside the categories is missing
                missing = col.isna()
                info["unknown_categories"] = int((missing & pd.notna(given)).sum())
            else:  # numbers as a float array: one Series per feature at the end, not one per step
                col = values.to_numpy(dtype="float64", na_value=np.nan) if isinstance(values, pd.Series) else np.asarray(values, dtype="float64")
                missing = np.isnan(col)
            info["missing"] = int(missing.sum())
            if missing.any():
                if f.missing == "error":
                    first = frame.index[missing][0]
                    raise SpecError(
                        f"Feature '{f.name}' is missing for {int(missing.sum())} patent(s), e.g. row {first} "
                        f"({frame.loc[first, 'patent_id']}), and its policy is 'error'. Fix: supply the inputs it needs "
                        f"({f.builder} builder) or change its 'missing' policy in the spec."
                    )
                fill = {"zero": 0.0, "median": self.medians_[f.name] if f.missing == "median" else None}.get(f.missing)
                if fill is not None:
                    col = pd.Series(col).fillna(fill).array if f.dtype == "category" else np.where(missing, fill, col)
                info["action"] = {"keep": "left missing", "zero": "filled with 0", "median": "filled with the fitted median"}[f.missing]
            columns[f.name] = col
            rows.append(info)
        report = pd.DataFrame(rows).fillna({"action": ""})
        extras = base[[c for c in ("expiry_date", "industry_code", "industry_name") if c in base.columns]]
        return FeatureResult(pd.DataFrame(columns, index=frame.index), report, extras)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The feature matrix (see :meth:`build`); warns when missing values were filled."""
        return self._warn(self.build(X)).matrix

    @staticmethod
    def _warn(result: FeatureResult) -> FeatureResult:
        filled = result.report[(result.report["missing"] > 0) & (result.report["policy"] != "keep")]
        if len(filled):
            warnings.warn(
                "Missing values filled by the spec's policy: " + ", ".join(f"{r.feature} ({r.missing}, {r.action})" for r in filled.itertuples()),
                FeatureWarning,
                stacklevel=3,
            )
        return result

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "references_")
        return np.array(self.spec_.names, dtype=object)

    @property
    def provenance(self) -> dict:
        """What a result must record about these features."""
        check_is_fitted(self, "references_")
        return {
            "feature_spec": self.spec_.id,
            "feature_spec_hash": self.spec_.hash,
            "valuation_date": self.valuation_date_.date().isoformat(),
            "references": "; ".join(self.reference_notes_),
        }
