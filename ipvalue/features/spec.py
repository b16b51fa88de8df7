"""Feature-set specs (``features/*.yaml``): what is built, how missing values are handled, and the
monotone direction of each feature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipvalue.config import content_hash, parse_yaml
from ipvalue.exceptions import SpecError

BUILDERS = ("claims", "family", "citations", "life", "industry", "events", "economics", "owners", "percentile", "passthrough")
MISSING_POLICIES = ("keep", "zero", "median", "error")
DTYPES = ("float64", "category")
REPO_FEATURES = Path(__file__).resolve().parents[2] / "features"
# In the wheel, the top-level features/ folder is shipped as ipvalue/specs (setup.py maps it).
PACKAGED_FEATURES = Path(__file__).resolve().parents[1] / "specs"


@dataclass(frozen=True)
class Feature:
    name: str
    builder: str
    dtype: str
    missing: str
    monotone: int
    description_zh: str
    description_en: str
    categories: tuple[str, ...] | None = None
    of: str | None = None
    oecd_variable: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """A parsed, validated feature-set spec.

    Attributes
    ----------
    name, version : str, int
    features : tuple of Feature
    builders : dict
        Parameters per builder group (e.g. ``life: {terms: statutory-terms}``).
    cohort : dict
        ``keys`` and ``min_size`` for cohort percentiles.
    raw : dict
        The YAML as parsed; logged with every model.
    hash : str
        :func:`ipvalue.config.content_hash` of ``raw``: part of every result.
    """

    name: str
    version: int
    features: tuple[Feature, ...]
    builders: dict
    cohort: dict
    raw: dict = field(repr=False)
    hash: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def passthrough(self) -> list[str]:
        """Source columns outside the PatentFrame contract that the spec copies as features."""
        return [f.name for f in self.features if f.builder == "passthrough"]

    @property
    def monotone(self) -> dict[str, int]:
        return {f.name: f.monotone for f in self.features}

    @classmethod
    def load(cls, spec: "str | Path | dict | FeatureSpec" = "core-v1") -> "FeatureSpec":
        """From a spec object, a dict, a YAML path, or a name (e.g. 'core-v1').

        A name is looked up in ``features/`` under the working directory, then in the installed
        package (``ipvalue/specs``, the wheel's copy of ``features/``), then in the checkout's
        ``features/``.
        """
        if isinstance(spec, FeatureSpec):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec, "dict")
        path = Path(spec)
        if path.suffix not in (".yaml", ".yml"):
            candidates = [folder / f"{spec}.yaml" for folder in (Path.cwd() / "features", PACKAGED_FEATURES, REPO_FEATURES)]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                looked = ", ".join(str(c) for c in candidates)
                raise SpecError(f"Feature spec {str(spec)!r} not found (looked for {looked}). Fix: pass a path to a features/*.yaml file.")
        if not path.is_file():
            raise SpecError(f"Feature spec {str(spec)!r} not found (looked for {path}). Fix: pass a path to a features/*.yaml file.")
        return cls.from_dict(parse_yaml(path.read_bytes(), where=f"feature spec {path}"), str(path))  # bounded, and parsed once per text

    @classmethod
    def from_dict(cls, raw: dict, origin: str = "dict") -> "FeatureSpec":
        if raw.get("extends"):
            # A spec may extend another: the base's features come first, its builders and cohort
            # settings are defaults. The hash covers the resolved spec.
            base = cls.load(raw["extends"]).raw
            raw = {
                **base, **{k: v for k, v in raw.items() if k != "extends"},
                "builders": {**(base.get("builders") or {}), **(raw.get("builders") or {})},
                "cohort": {**(base.get("cohort") or {}), **(raw.get("cohort") or {})},
                "features": [*base["features"], *raw.get("features", [])],
            }
        for key in ("name", "version", "features"):
            if key not in raw:
                raise SpecError(f"Feature spec {origin} has no '{key}'. Fix: add it (see features/core-v1.yaml).")
        feats, seen = [], set()
        for i, item in enumerate(raw["features"]):
            where = f"feature {i + 1} ({item.get('name', '?')}) of {origin}"
            for key, allowed in (("builder", BUILDERS), ("missing", MISSING_POLICIES), ("dtype", DTYPES)):
                if item.get(key) not in allowed:
                    raise SpecError(f"The '{key}' of {where} must be one of {list(allowed)}. Got {item.get(key)!r}.")
            if item.get("monotone") not in (-1, 0, 1):
                raise SpecError(f"The 'monotone' of {where} must be -1, 0 or 1. Got {item.get('monotone')!r}.")
            if item["name"] in seen:
                raise SpecError(f"{where}: the name {item['name']!r} is used twice. Fix: give each feature its own name.")
            if item["dtype"] == "category" and not item.get("categories"):
                raise SpecError(f"{where} is a category without 'categories'. Fix: list the allowed values.")
            if item["builder"] == "percentile" and item.get("of") not in seen:
                raise SpecError(f"{where} ranks 'of': {item.get('of')!r}, which is not a feature declared before it.")
            for key in ("description_zh", "description_en"):
                if not item.get(key):
                    raise SpecError(f"{where} has no '{key}'. Fix: describe every feature in Chinese and English.")
            seen.add(item["name"])
            feats.append(
                Feature(
                    name=item["name"], builder=item["builder"], dtype=item["dtype"], missing=item["missing"],
                    monotone=int(item["monotone"]), description_zh=item["description_zh"], description_en=item["description_en"],
                    categories=tuple(item["categories"]) if item.get("categories") else None,
                    of=item.get("of"), oecd_variable=item.get("oecd_variable"),
                )
            )
        cohort = {"keys": ["filing_year", "tech_field"], "min_size": 20, **(raw.get("cohort") or {})}
        return cls(
            name=raw["name"], version=int(raw["version"]), features=tuple(feats),
            builders=raw.get("builders") or {}, cohort=cohort, raw=raw, hash=content_hash(raw),
        )
