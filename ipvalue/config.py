"""YAML configuration shared by all modules: packaged assumption sets, content hashes."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml

from ipvalue.exceptions import AssumptionError, SpecError


def load_yaml(name_or_path: str | Path, *, folder: str = "assumptions") -> tuple[dict, str]:
    """Load a YAML file by path, or by name from the package's ``ipvalue/<folder>/``.

    Returns
    -------
    content : dict
    origin : str
        The path it was read from, or ``package:<folder>/<name>.yaml``.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SpecError(f"YAML file {str(path)!r} does not exist. Fix: check the path.")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        shipped = resources.files("ipvalue") / folder / f"{name_or_path}.yaml"
        if not shipped.is_file():
            available = sorted(p.name[:-5] for p in (resources.files("ipvalue") / folder).iterdir() if p.name.endswith(".yaml"))
            raise SpecError(f"No packaged {folder} set named {str(name_or_path)!r}. Fix: use one of {available} or a .yaml path.")
        text, origin = shipped.read_text(encoding="utf-8"), f"package:{folder}/{name_or_path}.yaml"
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{origin} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise SpecError(f"{origin} must hold a mapping at the top level. Got {type(content).__name__}.")
    return content, origin


def content_hash(obj) -> str:
    """A short, stable hash of parsed configuration (key order and YAML formatting do not matter)."""
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def assumption_value(raw: dict, path: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """The number at dotted ``path`` of an assumption set (``{value, source}`` or a bare number),
    checked against its documented range; an :class:`AssumptionError` names the path, set and value."""
    name = raw.get("name", "?")
    node = raw
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise AssumptionError(f"Assumption set {name!r} has no '{path}'. Fix: add it with a value and a source.")
        node = node[key]
    value = node["value"] if isinstance(node, dict) and "value" in node else node
    if isinstance(value, bool):
        raise AssumptionError(f"The '{path}' of assumption set {name!r} must be a number. Got {value!r}.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise AssumptionError(f"The '{path}' of assumption set {name!r} must be a number. Got {value!r}.") from None
    if (value <= lo if lo_open else value < lo) or (value >= hi if hi_open else value > hi) or value != value:
        bounds = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise AssumptionError(f"The '{path}' of assumption set {name!r} must be in {bounds}. Got {value:g}.")
    return value
