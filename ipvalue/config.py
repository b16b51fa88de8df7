"""YAML configuration shared by all modules: bounded safe parsing, packaged assumption sets, hashes.

Every YAML file ipvalue reads (applications, column mappings, experiments, assumption sets) goes
through :func:`parse_yaml`, which is ``yaml.safe_load`` plus the limits an untrusted file needs:

* **size**: at most :data:`MAX_YAML_BYTES` bytes;
* **nesting**: at most :data:`MAX_YAML_DEPTH` levels of mappings / sequences (a deeper file would
  otherwise end in a ``RecursionError`` inside the parser);
* **aliases**: anchors and aliases are allowed (assumption sets use them), but the document as
  expanded (every alias counted as a full copy of what it points to) may hold at most
  :data:`MAX_YAML_NODES` nodes, so a 1 kB "billion laughs" file is refused before anything walks
  it; a recursive alias (``&a [*a]``) is refused;
* **duplicate keys** in one mapping are an error naming the key and both lines (PyYAML keeps the
  last silently);
* **tags**: only the standard YAML tags (str, int, float, bool, null, map, seq, timestamp, ...);
  a Python tag (``!!python/object/apply:os.system``) or a custom tag is refused with its line.

Untrusted text is parsed by PyYAML's pure-Python parser, whose composer enforces the depth bound.
The files installed with the package (``package_data=True``: ipvalue's own assumption sets and
mappings, as trusted as its code) are parsed by libyaml's C parser where PyYAML has it, about ten
times faster, with the same checks of tags, duplicate keys and size; libyaml has no depth bound
(100,000 nested brackets crash it), so it never reads anything from outside.

Calibrated sets are governed like models (:func:`check_governance`, on every set read from a file:
the bank's configuration folder or a path): a set that ``ipvalue calibrate`` wrote carries a
``governance`` block. A **candidate** (``status: candidate``) is refused: no valuation may use it
until a validator promotes it (``ipvalue calibrate promote``). A **promoted** set is used only when
the audit store records its promotion in the chain, with the same numbers, validator, calibration
run and record: the store the valuation is recorded in (:func:`sets_checked_against`, which the
workflow sets), else ``$IPVALUE_AUDIT_DB``, else ``audit/ipvalue-audit.db`` (the key
``$IPVALUE_AUDIT_KEY_FILE``); a set whose numbers cite a calibration run but that has no governance
block (a candidate with the block cut off) is refused too.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import hashlib
import json
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ipvalue.exceptions import AssumptionError, SpecError

#: Largest YAML text accepted, in bytes (UTF-8). Applications and assumption sets are a few kB.
MAX_YAML_BYTES = 1_000_000
#: Deepest nesting of mappings / sequences accepted.
MAX_YAML_DEPTH = 32
#: Most nodes accepted once every alias is expanded (a shipped assumption set has < 2,000).
MAX_YAML_NODES = 100_000

_STANDARD_TAGS = frozenset(
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "set", "omap", "pairs", "merge", "value")
)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than ``max_depth``."""

    max_depth = MAX_YAML_DEPTH
    where = "YAML"

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise SpecError(
                    f"{self.where} nests deeper than {self.max_depth} levels (line {mark.line + 1}). "
                    "Fix: flatten the file; ipvalue's YAML files need a few levels only."
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_nodes(root, *, where: str, max_nodes: int) -> None:
    """Walk the node graph once (shared nodes memoised): tags, duplicate keys, expanded size."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise SpecError(
                f"{where} line {node.start_mark.line + 1}: an alias refers to the node that contains it (a recursive structure). "
                "Fix: remove the recursive alias."
            )
        if node.tag not in _STANDARD_TAGS:
            raise SpecError(
                f"{where} line {node.start_mark.line + 1}: the tag {node.tag!r} is not allowed "
                "(Python and custom tags could run code or build objects). Fix: write plain values without tags."
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for k, v in node.value:
                if isinstance(k, ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    ident = (k.tag, k.value)
                    if ident in seen:
                        raise SpecError(
                            f"{where} line {k.start_mark.line + 1}: duplicate key {k.value!r} (first on line {seen[ident]}). "
                            "Fix: keep one entry per key; YAML would silently keep only the last."
                        )
                    seen[ident] = k.start_mark.line + 1
                total += size(k) + size(v)
        open_nodes.discard(key)
        sizes[key] = total
        if total > max_nodes:
            raise SpecError(
                f"{where} expands to more than {max_nodes:,} values once its aliases (*name) are resolved "
                f"(line {node.start_mark.line + 1}). Fix: write the values out or use fewer nested aliases."
            )
        return total

    size(root)


#: Texts parsed successfully, by their SHA-256 and bounds (a refused text is parsed again, so its
#: message names the file at hand); the least recently used beyond ``_PARSED_KEPT`` are dropped.
_PARSED: "OrderedDict[tuple, object]" = OrderedDict()
_PARSED_KEPT = 64


def parse_yaml(
    text: str | bytes,
    *,
    where: str = "YAML",
    max_bytes: int = MAX_YAML_BYTES,
    max_depth: int = MAX_YAML_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
    package_data: bool = False,
):
    """Parse untrusted YAML text safely and within bounds.

    Parameters
    ----------
    text : str or bytes
        The document (bytes are decoded as UTF-8). One document only.
    where : str, default="YAML"
        Name used in messages (a file path, say).
    max_bytes, max_depth, max_nodes : int
        Size in bytes, nesting depth and node count after alias expansion; see the module notes.
    package_data : bool, default=False
        True only for a file installed with ipvalue: parsed by libyaml's C parser (no depth
        bound), with the same result and the other checks.

    Returns
    -------
    object
        What ``yaml.safe_load`` would return (``None`` for an empty document).

    Raises
    ------
    SpecError
        Too large, too deep, an alias bomb, a duplicate key, a non-standard tag or invalid YAML;
        the message names the line and the fix.

    Examples
    --------
    >>> parse_yaml("a: 1\\nb: [x, y]")
    {'a': 1, 'b': ['x', 'y']}
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{where} is not UTF-8 text (byte {exc.start}). Fix: save the file as UTF-8.") from exc
    if not isinstance(text, str):
        raise TypeError(f"parse_yaml expects str or bytes. Got {type(text).__name__}.")
    n_bytes = len(text.encode("utf-8"))
    if n_bytes > max_bytes:
        raise SpecError(f"{where} is {n_bytes:,} bytes; at most {max_bytes:,} are accepted. Fix: check that this is the right file.")
    key = (hashlib.sha256(text.encode("utf-8")).hexdigest(), max_depth, max_nodes)
    if key in _PARSED:  # the same text parsed before (an assumption set read by every valuation): a copy of that result
        _PARSED.move_to_end(key)
        return copy.deepcopy(_PARSED[key])
    fast = package_data and hasattr(yaml, "CSafeLoader")
    loader_cls = yaml.CSafeLoader if fast else type("_Loader", (_BoundedLoader,), {"max_depth": max_depth, "where": where})
    loader = None
    try:
        loader = loader_cls(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where=where, max_nodes=max_nodes)
        result = loader.construct_document(node)
        _PARSED[key] = copy.deepcopy(result)
        if len(_PARSED) > _PARSED_KEPT:
            _PARSED.popitem(last=False)
        return result
    except yaml.YAMLError as exc:
        raise SpecError(f"{where} is not valid YAML: {exc}. Fix: correct the line named.") from exc
    except RecursionError as exc:  # pragma: no cover - the depth bound comes first
        raise SpecError(f"{where} nests too deeply. Fix: flatten the file.") from exc
    finally:
        if loader is not None:
            loader.dispose()


#: The bank's configuration folder: ``$IPVALUE_CONFIG_DIR/<folder>/<name>.yaml`` sets (its own
#: pledge policy, assumption sets) are found by name, beside the shipped ones.
ENV_CONFIG_DIR = "IPVALUE_CONFIG_DIR"


def load_yaml(name_or_path: str | Path, *, folder: str = "assumptions") -> tuple[dict, str]:
    """Load a YAML mapping by path, or by name: from the bank's configuration folder
    (``$IPVALUE_CONFIG_DIR/<folder>/<name>.yaml``), else the package's ``ipvalue/<folder>/``.

    Parsed with :func:`parse_yaml` (bounded, no duplicate keys, no Python tags). A bank set that
    reuses a shipped set's ``name`` and ``version`` with different content is refused: provenance
    records name, version and hash, and two different sets must not share a name and version.

    Returns
    -------
    content : dict
    origin : str
        The path it was read from, or ``package:<folder>/<name>.yaml``.
    """
    path = Path(name_or_path)
    bank = Path(os.environ[ENV_CONFIG_DIR]) / folder / f"{name_or_path}.yaml" if os.environ.get(ENV_CONFIG_DIR) and path.suffix not in (".yaml", ".yml") else None
    if bank is not None and bank.is_file():
        content, origin = load_yaml(bank, folder=folder)
        shipped = resources.files("ipvalue") / folder / f"{name_or_path}.yaml"
        if shipped.is_file():
            original = parse_yaml(shipped.read_bytes(), where=f"package:{folder}/{name_or_path}.yaml", package_data=True)
            if (content.get("name"), content.get("version")) == (original.get("name"), original.get("version")) and content_hash(content) != content_hash(original):
                raise SpecError(f"{origin} has the name and version of the shipped set {content.get('name')}-v{content.get('version')} but different content. "
                                "Fix: give the bank's set its own name or a new version.")
        return content, origin
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SpecError(f"YAML file {str(path)!r} does not exist. Fix: check the path.")
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise SpecError(f"{path} is {size:,} bytes; at most {MAX_YAML_BYTES:,} are accepted. Fix: check that this is the right file.")
        text, origin = path.read_bytes(), str(path)
    else:
        content, origin = _shipped(folder, str(name_or_path))
        return copy.deepcopy(content), origin  # callers may edit their copy; the parsed file is read once per process
    content = parse_yaml(text, where=origin)
    if not isinstance(content, dict):
        raise SpecError(f"{origin} must hold a mapping at the top level. Got {type(content).__name__}. Fix: write 'key: value' lines.")
    check_governance(content, origin)
    return content, origin


#: What a number calibrated by ``ipvalue calibrate`` says first in its ``source``.
CALIBRATION_CITATION = "calibrated by ipvalue calibrate"
#: The ``governance.status`` of a calibrated set: written by ``ipvalue calibrate``, or promoted by a validator.
GOVERNANCE_STATUSES = ("candidate", "promoted")
_READING_CANDIDATES = contextvars.ContextVar("ipvalue_reading_candidates", default=False)
_SETS_AUDIT_STORE = contextvars.ContextVar("ipvalue_sets_audit_store", default=None)


@contextmanager
def sets_checked_against(store):
    """Within the block, promoted sets are checked against the audit ``store`` (a SQLite path or a
    ``postgresql://`` URL; None: ``$IPVALUE_AUDIT_DB``, else ``audit/ipvalue-audit.db``): the
    workflow checks them against the store it records the valuation in."""
    token = _SETS_AUDIT_STORE.set(store)
    try:
        yield
    finally:
        _SETS_AUDIT_STORE.reset(token)


@contextmanager
def reading_candidates():
    """Within the block, a candidate set loads (what ``ipvalue calibrate`` and the promotion do to
    check that a candidate loads through its set's loader); promoted sets are still checked. No
    valuation runs inside it."""
    token = _READING_CANDIDATES.set(True)
    try:
        yield
    finally:
        _READING_CANDIDATES.reset(token)


def set_content_sha256(content: dict) -> str:
    """SHA-256 (hex) of a set's content without its ``governance`` block (key order and YAML
    formatting do not matter): what a promotion records, so the installed set's numbers can be
    checked against it."""
    body = {k: v for k, v in content.items() if k != "governance"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _cites_calibration(node) -> bool:
    if isinstance(node, dict):
        return (isinstance(node.get("source"), str) and node["source"].startswith(CALIBRATION_CITATION)) or any(_cites_calibration(v) for v in node.values())
    return isinstance(node, list) and any(_cites_calibration(v) for v in node)


def check_governance(content: dict, origin: str) -> None:
    """Refuse a calibrated set a valuation may not use (see the module notes).

    Raises
    ------
    SpecError
        A candidate (outside :func:`reading_candidates`); a set claiming promotion that the audit
        store does not record, or whose numbers, validator, calibration run or record differ from
        what it recorded; an unknown status; numbers that cite a calibration run without a
        governance block.
    """
    governance = content.get("governance")
    label = f"{content.get('name', origin)}-v{content.get('version')}"
    if governance is None:
        if _cites_calibration(content):
            raise SpecError(f"{origin}: set {label} has numbers calibrated by ipvalue calibrate but no 'governance' block: a calibrated set is used "
                            "only once a validator has promoted it. Fix: promote the candidate as calibrate wrote it "
                            "(ipvalue calibrate promote CANDIDATE.yaml --reason ...) and use the set it installs.")
        return
    status = governance.get("status") if isinstance(governance, dict) else None
    if status not in GOVERNANCE_STATUSES:
        raise SpecError(f"The 'governance.status' of set {label} ({origin}) must be one of {list(GOVERNANCE_STATUSES)}. Got {status!r}. "
                        "Fix: use the file ipvalue calibrate (candidate) or its promotion (promoted) wrote.")
    if status == "candidate":
        if _READING_CANDIDATES.get():
            return
        raise SpecError(f"{origin}: set {label} is a CANDIDATE written by ipvalue calibrate (run {governance.get('calibration_run')}); no valuation may "
                        f"use it until a validator promotes it. Fix: a validator reviews the back-test and runs 'ipvalue calibrate promote {origin} "
                        "--reason ...', which installs the promoted set in the bank's configuration folder.")
    from ipvalue.audit import set_promotion, store_display
    from ipvalue.exceptions import AuditStoreError

    record = governance.get("audit_record") if isinstance(governance.get("audit_record"), dict) else {}
    store = _SETS_AUDIT_STORE.get()
    try:
        promotion = set_promotion(content.get("name"), int(content.get("version")), store)
    except (AuditStoreError, TypeError, ValueError) as exc:
        raise SpecError(f"{origin}: set {label} claims a validator's promotion, which the audit store must confirm, and it cannot: {exc}") from exc
    if promotion is None:
        raise SpecError(f"{origin}: set {label} claims promotion by {governance.get('promoted_by')!r} (audit record {record.get('seq')}), but the audit "
                        f"store {store_display(store)!r} records no promotion of it. Fix: a validator promotes the candidate against this store "
                        "('ipvalue calibrate promote CANDIDATE.yaml --reason ...'), or value against the store that recorded it.")
    differences = [what for what, stated, recorded in (
        ("its numbers", set_content_sha256(content), promotion["content_sha256"]),
        ("the validator", governance.get("promoted_by"), promotion["promoted_by"]),
        ("the calibration run", governance.get("calibration_run"), promotion["calibration_run"]),
        ("the audit record", record.get("seq"), promotion["seq"]),
    ) if stated != recorded]
    if differences:
        raise SpecError(f"{origin}: set {label} differs from the promotion the audit store {store_display(store)!r} records (record {promotion['seq']}, by "
                        f"{promotion['promoted_by']} at {promotion['promoted_at']}): {', '.join(differences)}. Fix: a promoted set is used as installed; "
                        "to change a number, calibrate again and have the new candidate promoted.")


@functools.lru_cache(maxsize=64)
def _shipped(folder: str, name: str) -> tuple[dict, str]:
    """A set shipped with the package, parsed once (package data does not change while running)."""
    shipped = resources.files("ipvalue") / folder / f"{name}.yaml"
    if not shipped.is_file():
        available = sorted(p.name[:-5] for p in (resources.files("ipvalue") / folder).iterdir() if p.name.endswith(".yaml"))
        raise SpecError(f"No packaged {folder} set named {name!r}. Fix: use one of {available} or a .yaml path.")
    origin = f"package:{folder}/{name}.yaml"
    content = parse_yaml(shipped.read_bytes(), where=origin, package_data=True)
    if not isinstance(content, dict):
        raise SpecError(f"{origin} must hold a mapping at the top level. Got {type(content).__name__}. Fix: write 'key: value' lines.")
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


@dataclass(frozen=True)
class NamedSet:
    """A named configuration set (an assumption set, a policy, a table) as read: its content, where
    it came from, its name, version and content hash. ``label`` (``name-vN``) and ``hash`` are what
    every result records about it."""

    raw: dict
    origin: str
    name: str
    version: object
    hash: str

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def provenance(self, key: str) -> dict:
        """``{key: 'name-vN', key + '_hash': hash}`` for a result's provenance."""
        return {key: self.label, f"{key}_hash": self.hash}


def load_set(which, *, folder: str = "assumptions") -> NamedSet:
    """A set given by name (shipped or the bank's, :func:`load_yaml`), by YAML path, or as a parsed
    dict: bounded and checked like every YAML ipvalue reads, with its name, version and hash (the one
    place this is written)."""
    if isinstance(which, NamedSet):
        return which
    raw, origin = (which, "dict") if isinstance(which, dict) else load_yaml(which, folder=folder)
    return NamedSet(raw, origin, str(raw.get("name", origin)), raw.get("version", 0), content_hash(raw))
