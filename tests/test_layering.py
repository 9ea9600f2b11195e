"""The one-way import layering of ``fastbin``, held for every module under ``fastbin/``.

Each module belongs to exactly one layer, chosen by its path: facade (``fastbin``,
``fastbin.__main__``), tools, nn, runtime, ops, io, kernels and base (the listed
top-level modules). An import, at module level or inside a function, may only
reach the layers ``ALLOWED`` names for its source; nothing but the facade imports
the facade; tqdm and platformdirs stay out of the lower layers; and the graph of
internal imports has no cycle. The checker is plain functions over a directory tree,
so the tests below also show it failing on a copied tree with a bad import added.
"""
# Why an AST walk and not import-linter: no extra dependency, and the rules, the
# third-party bans and the proof that the check can fail live in one small file.
# import-linter's graph (built by grimp) does count function-level imports: grimp's
# ImportScanner.scan_for_imports runs ast.walk over the whole module
# (github.com/seddonym/grimp, src/grimp/adaptors/importscanner.py), and in
# seddonym/import-linter issue #230 the maintainer calls them "inline imports", which
# every contract checks today. It does not see importlib.import_module("...") calls;
# this file does.
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "fastbin"
FACADE = {"fastbin", "fastbin.__main__"}
BASE = {"_config", "_limits", "_tables", "_version", "bits", "packed", "_validate", "reference"}
SUBPACKAGES = {"tools", "nn", "runtime", "ops", "io", "kernels"}
#: top-level modules of a subpackage's layer: fastbin.dask is a tool on top of the runtime,
#: fastbin.sklearn (scikit-learn's estimator API) a tool on top of the trainer
TOP_LEVEL = {"dask": "tools", "sklearn": "tools"}
ALLOWED = {
    "facade": {"facade", "tools", "nn", "runtime", "ops", "io", "kernels", "base"},
    "tools": {"tools", "nn", "runtime", "ops", "io", "kernels", "base"},
    "nn": {"nn", "runtime", "ops", "io", "base"},
    "runtime": {"runtime", "ops", "io", "kernels", "base"},
    "ops": {"ops", "kernels", "base"},
    "io": {"io", "base"},
    "kernels": {"kernels", "base"},
    "base": {"base"},
}
BANNED = {"tqdm": {"runtime", "ops", "kernels", "io", "base"}, "platformdirs": {"runtime", "ops", "kernels", "base"}}


def source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(root: Path, path: Path) -> str:
    parts = ("fastbin", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer of a ``fastbin`` module, or None if it has none."""
    parts = module.split(".")
    if module in FACADE:
        return "facade"
    if len(parts) >= 2 and parts[1] in SUBPACKAGES:
        return parts[1]
    if len(parts) == 2 and parts[1] in TOP_LEVEL:
        return TOP_LEVEL[parts[1]]
    return "base" if len(parts) == 2 and parts[1] in BASE else None


def is_module(root: Path, module: str) -> bool:
    """Whether ``module`` (``fastbin...``) is a module or package file under ``root``."""
    if module.split(".")[0] != "fastbin":
        return False
    rel = root.joinpath(*module.split(".")[1:])
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def _import_module_target(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) and not value.startswith(".") else None
    return None


def collect_imports(root: Path) -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported absolute module, line)}: every import anywhere in the file."""
    graph: dict[str, set[tuple[str, int]]] = {}
    for path in source_files(root):
        module = module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: set[tuple[str, int]] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                edges |= {(alias.name, node.lineno) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add((full if is_module(root, full) else base, node.lineno))
            elif isinstance(node, ast.Call) and (target := _import_module_target(node)):
                edges.add((target, node.lineno))
        graph[module] = {(target, line) for target, line in edges if target}
    return graph


def violations(root: Path) -> list[str]:
    """Every broken rule, as ``fastbin/path.py:line: what``."""
    found = []
    files = {module_name(root, path): path.relative_to(root.parent).as_posix() for path in source_files(root)}
    for module, edges in sorted(collect_imports(root).items()):
        where, layer = files[module], layer_of(module)
        if layer is None:
            found.append(f"{where}: unassigned module {module} (no layer)")
            continue
        for target, line in sorted(edges, key=lambda edge: (edge[1], edge[0])):
            top = target.split(".")[0]
            if layer in BANNED.get(top, ()):
                found.append(f"{where}:{line}: {layer} imports {top} ({target})")
            if top != "fastbin" or target == module:
                continue
            if target == "fastbin":
                if layer != "facade":
                    found.append(f"{where}:{line}: {layer} imports the facade (fastbin)")
            elif layer_of(target) is None:
                found.append(f"{where}:{line}: {layer} imports {target}, which has no layer")
            elif layer_of(target) not in ALLOWED[layer]:
                found.append(f"{where}:{line}: {layer} -> {layer_of(target)} ({module} imports {target})")
    return found


def internal_graph(root: Path) -> dict[str, set[str]]:
    """module -> the fastbin modules it imports (self-edges dropped)."""
    imports = collect_imports(root)
    return {m: {t for t, _ in edges if t in imports and t != m} for m, edges in imports.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (a depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_package_layering_holds():
    found = violations(ROOT)
    assert found == [], "layering violations:\n" + "\n".join(found)


def test_no_import_cycles():
    cycle = find_cycle(internal_graph(ROOT))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.fixture
def tree(tmp_path):
    copy = tmp_path / "fastbin"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path, text: str) -> int:
    """Append ``text`` to the file; return the line number of its last line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, *text.splitlines()]) + "\n", encoding="utf-8")
    return len(lines) + len(text.splitlines())


@pytest.mark.parametrize(
    "file, text, expected",
    [
        ("runtime/model.py", "def _bad():\n    from ..nn import model",
         "runtime -> nn (fastbin.runtime.model imports fastbin.nn.model)"),
        ("kernels/pack.py", "from fastbin.tools import cli",
         "kernels -> tools (fastbin.kernels.pack imports fastbin.tools.cli)"),
        ("ops/pack.py", "import fastbin", "ops imports the facade (fastbin)"),
        ("ops/pack.py", "def _bad():\n    from .. import __version__", "ops imports the facade (fastbin)"),
        ("io/idx.py", "def _bad():\n    import tqdm", "io imports tqdm (tqdm)"),
        ("kernels/convert.py", "class _Bad:\n    import platformdirs", "kernels imports platformdirs (platformdirs)"),
        ("ops/loss.py", "def _bad():\n    importlib.import_module('fastbin.nn.train')",
         "ops -> nn (fastbin.ops.loss imports fastbin.nn.train)"),
    ],
)
def test_checker_catches_back_import(tree, file, text, expected):
    before = violations(tree)
    line = _append(tree / file, text)
    added = [v for v in violations(tree) if v not in before]
    assert added == [f"fastbin/{file}:{line}: {expected}"]


def test_checker_catches_unassigned_module(tree):
    (tree / "helpers.py").write_text("X = 1\n", encoding="utf-8")
    assert "fastbin/helpers.py: unassigned module fastbin.helpers (no layer)" in violations(tree)


def test_checker_catches_cycle(tree):
    # ops/dense.py already imports .matmul at module level: one function-level import back closes the loop
    assert "fastbin.ops.matmul" in internal_graph(tree)["fastbin.ops.dense"]
    _append(tree / "ops/matmul.py", "def _bad():\n    from .dense import dense_sign_matmul")
    cycle = find_cycle(internal_graph(tree))
    assert cycle is not None and {"fastbin.ops.dense", "fastbin.ops.matmul"} <= set(cycle), cycle


def test_runtime_imports_without_trainer():
    code = (
        "import fastbin.runtime, sys\n"
        "banned = ('fastbin.nn', 'fastbin.tools', 'tqdm', 'platformdirs')\n"
        "print(sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in banned)))"
    )
    env = {**os.environ, "FASTBIN_NO_CACHE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT.parent, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"import fastbin.runtime loaded: {out.stdout.strip()}"


def test_public_names_resolve():
    import fastbin
    import fastbin.ops
    import fastbin.reference

    missing = [name for name in fastbin.__all__ if not hasattr(fastbin, name)]
    assert missing == [], f"fastbin.__all__ names that do not resolve: {missing}"
    not_in_reference = [n for n in fastbin.ops.__all__ if not callable(getattr(fastbin.reference, n, None))]
    assert not_in_reference == [], f"fastbin.ops.__all__ names missing from fastbin.reference: {not_in_reference}"
