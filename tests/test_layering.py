"""The package layout is its architecture: each layer imports only the layers before it,
and no module imports another in a cycle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "analogeq"

#: The layers, in order: a module may import its own layer and the layers before it.
LAYERS = (
    "errors", "params", "circuit", "spice", "backends", "hardware", "blocks", "model", "cost",
    "runs", "cli",
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every ``analogeq...`` module ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # imports under ``if TYPE_CHECKING:`` never run
        id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
        and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for stmt in block.body for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "analogeq")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "analogeq":
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
            out.update(subs)  # ``from .pkg import module`` imports that module
            if len(subs) < len(node.names):
                out.add(mod)
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        if "configs" in path.parts:
            continue
        src = _module_name(path)
        g.add_node(src)
        for dst in _imports(path):
            if dst != src:
                g.add_edge(src, dst)
    return g


def test_every_module_is_in_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert tops - {"__init__", "__main__"} == set(LAYERS)


def test_imports_point_only_up_the_layer_list():
    bad = []
    for src, dst in _graph().edges:
        ls, ld = _layer(src), _layer(dst)
        if src in ("analogeq", "analogeq.__main__"):  # the front door and ``python -m``
            continue
        if ls is None or ld is None:
            bad.append(f"{src} -> {dst} (the front door is for users, not for modules)")
        elif LAYERS.index(ld) > LAYERS.index(ls):
            bad.append(f"{src} ({ls}) imports {dst} ({ld}), a later layer")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_command_line():
    users = [s for s, d in _graph().edges if d == "analogeq.cli" and s != "analogeq.__main__"]
    assert not users


def test_no_import_cycles():
    g = _graph()
    # a package's __init__ re-exports its modules: edges into a package count as edges
    # into the modules it re-exports, so cycles through __init__ files are real cycles
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_only_the_ngspice_adapter_imports_pyspice():
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "PySpice" for n in names):
                users.append(_module_name(path))
    assert set(users) == {"analogeq.backends.ngspice"}
