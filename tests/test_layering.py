"""The one-way layering of the package, held for every module.

Each module of ``fastbin/`` belongs to one layer by its path; an import, at
module level or inside a function, may only reach the layers ALLOWED lists,
nothing but the facade imports the facade, and the import graph has no cycle.
Checked with an AST walk of the source (no extra dependency; import-linter
would also work, but this keeps the rules, the third-party bans and the proof
that the check can fail in one small file).
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "fastbin"
BASE = {"_config", "_version", "bits", "packed", "_validate", "reference"}
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


def module_name(root: Path, path: Path) -> str:
    parts = ("fastbin", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if module in ("fastbin", "fastbin.__main__"):
        return "facade"
    if len(parts) >= 2 and parts[1] in ALLOWED and parts[1] not in ("facade", "base"):
        return parts[1]
    return "base" if len(parts) == 2 and parts[1] in BASE else None


def _is_module(root: Path, module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def collect_imports(root: Path) -> dict[str, list[tuple[str, int]]]:
    """module -> [(imported module, line)], every import statement of the file."""
    graph = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        module = module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                edges += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.append((full if base.startswith("fastbin") and _is_module(root, full) else base, node.lineno))
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                edges.append((node.args[0].value, node.lineno))
        graph[module] = edges
    return graph


def violations(root: Path) -> list[str]:
    found = []
    for module, edges in collect_imports(root).items():
        layer = layer_of(module)
        if layer is None:
            found.append(f"{module}: unassigned module (no layer)")
            continue
        for target, line in edges:
            top = target.split(".")[0]
            if top in BANNED and layer in BANNED[top]:
                found.append(f"{module}:{line}: {layer} imports {target}")
            if top != "fastbin" or target == module:
                continue
            if target == "fastbin" and layer != "facade":
                found.append(f"{module}:{line}: imports the facade (fastbin)")
            elif layer_of(target) not in ALLOWED[layer]:
                found.append(f"{module}:{line}: {layer} -> {layer_of(target)} ({target})")
    return found


def find_cycle(root: Path) -> list[str] | None:
    graph = {m: sorted({t for t, _ in e if t.startswith("fastbin") and t != m})
             for m, e in collect_imports(root).items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_package_layering_holds():
    assert violations(ROOT) == []


def test_no_import_cycles():
    assert find_cycle(ROOT) is None


@pytest.fixture
def tree(tmp_path):
    copy = tmp_path / "fastbin"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines + text.splitlines()) + "\n", encoding="utf-8")
    return len(lines) + text.count("\n") + 1


@pytest.mark.parametrize("file, text, expected", [
    ("runtime/model.py", "def _bad():\n    from ..nn import model", "runtime -> nn (fastbin.nn.model)"),
    ("kernels/pack.py", "from fastbin.tools import cli", "kernels -> tools (fastbin.tools.cli)"),
    ("ops/pack.py", "import fastbin", "imports the facade"),
    ("io/idx.py", "def _bad():\n    import tqdm", "io imports tqdm"),
])
def test_checker_catches_back_import(tree, file, text, expected):
    line = _append(tree / file, text)
    found = violations(tree)
    assert len(found) == 1 and expected in found[0] and f":{line}:" in found[0], found


def test_checker_catches_cycle(tree):
    _append(tree / "ops/matmul.py", "def _bad():\n    from .dense import dense_sign_matmul")
    cycle = find_cycle(tree)
    assert cycle is not None and {"fastbin.ops.dense", "fastbin.ops.matmul"} <= set(cycle)


def test_runtime_imports_without_trainer():
    code = ("import sys, fastbin.runtime\n"
            "banned = ('fastbin.nn', 'fastbin.tools', 'tqdm', 'platformdirs')\n"
            "print(sorted(m for m in sys.modules if m.startswith(banned)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"FASTBIN_NO_CACHE": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
