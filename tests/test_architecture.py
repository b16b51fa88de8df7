"""The package's layout: imports run one way (no circle), and no module reaches into another
package's private names. Read from the modules' own import statements with ``ast``."""

import ast
from pathlib import Path

import ipvalue

ROOT = Path(ipvalue.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _imports(name: str, path: Path, mods: dict) -> list[tuple[str, str]]:
    """(imported module, imported name or '') for every ipvalue import of the module, top-level or local."""
    out = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.split(".")[0] == "ipvalue"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] == "ipvalue":
                out += [(base, a.name) for a in node.names]
    return out


def _resolve(target: str, mods: dict) -> str | None:
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        for base, name in _imports(m, f, mods):
            for target in (f"{base}.{name}" if name else base, base):
                r = _resolve(target, mods)
                if r and r != m and not (mods[r].name == "__init__.py" and m.startswith(r + ".")):
                    graph[m].add(r)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (as a path that returns to its start), or None."""
    state, stack = {}, []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == "open":
                return stack[stack.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        state[v] = "done"
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_ipvalue_run_one_way():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_module_imports_a_private_name_of_another_package():
    mods = _modules()
    offenders = []
    for m, f in mods.items():
        package = m.rsplit(".", 1)[0] if f.name != "__init__.py" else m
        for base, name in _imports(m, f, mods):
            if name.startswith("_") and not name.startswith("__") and not base.startswith(package):
                offenders.append(f"{m} imports {base}.{name}")
    assert not offenders, offenders


#: Underscore names that are other libraries' only way in: named tuples' public methods, PySpark's
#: JVM gateway (Hadoop's file system has no Python API), and os._exit (the documented way to end a
#: process without the interpreter's teardown).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_jvm", "_jsc", "_exit"}


def test_no_module_reaches_into_a_private_attribute_of_another_object():
    """``obj._name`` only on ``self`` / ``cls``: a step another module needs is public."""
    offenders = []
    for m, f in _modules().items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") and node.attr not in NAMEDTUPLE_API:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    offenders.append(f"{m}:{node.lineno} .{node.attr}")
    assert not offenders, offenders
