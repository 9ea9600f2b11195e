"""The manual cannot rot: every ```python block of README.md and docs/*.md runs,
every public name is documented, every name the docs mention exists, and every
relative link points to a file that exists.

Blocks of one file run in order in one namespace, in a temporary working
directory (so a block may use what an earlier block of its file defined or
wrote). A block preceded by one of these HTML comments runs alone, in a fresh
namespace and directory, and is skipped with the reason when its requirement is
missing (so such a block must be self-contained; use them sparingly):

    <!-- doctest: skip-without-dataset -->       Fashion-MNIST installed locally (no download)
    <!-- doctest: skip-without-module NAME -->   ``import NAME`` works (an optional extra)
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
FILES = [ROOT / "README.md", *DOCS]
#: the modules whose ``__all__`` must be documented, and the file that documents them
PUBLIC_MODULES = ("fastbin", "fastbin.nn", "fastbin.runtime", "fastbin.kernels", "fastbin.dask")
API_DOC = ROOT / "docs" / "api.md"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_MARK = re.compile(r"<!--\s*doctest:\s*([\w-]+)(?:\s+([\w.]+))?\s*-->\s*\Z")
_MARKS = ("skip-without-dataset", "skip-without-module")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    mark: tuple | None  # (kind, argument) of a doctest comment just before the block

    @property
    def name(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{where}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with the doctest mark (an HTML
    comment on the line just before the fence, blank lines allowed) if any."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = _MARK.search(text[: match.start()].rstrip())
        mark = None
        if before is not None:
            if before.group(1) not in _MARKS:
                raise ValueError(f"{path.name}: unknown doctest mark {before.group(0)!r}; known: {_MARKS}")
            mark = (before.group(1), before.group(2))
        blocks.append(Block(path, text.count("\n", 0, match.start()) + 1, match.group(2), mark))
    return blocks


def _missing(mark) -> str | None:
    """Why a marked block cannot run here, or None."""
    kind, arg = mark
    if kind == "skip-without-dataset":
        from fastbin.io.datasets import dataset_source

        return None if dataset_source("fashion-mnist") else "Fashion-MNIST not installed (no download in tests)"
    if importlib.util.find_spec(arg) is None:
        return f"needs the optional module {arg!r}"
    return None


def _run(blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_example__"}
    for block in blocks:
        try:
            exec(compile(block.code, block.name, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the Python block at {block.name} failed: {exc!r}") from exc


ALL_BLOCKS = [b for path in FILES for b in python_blocks(path)]
FILES_WITH_PLAIN_BLOCKS = [p for p in FILES if any(b.mark is None for b in python_blocks(p))]
MARKED_BLOCKS = [b for b in ALL_BLOCKS if b.mark is not None]


def test_the_docs_exist_and_have_code():
    assert (ROOT / "docs" / "index.md") in DOCS and API_DOC in DOCS
    assert len(ALL_BLOCKS) >= 8 and len(FILES_WITH_PLAIN_BLOCKS) >= 4


def test_readme_fits_on_a_screen():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


# The examples train small models: seconds with the jitted kernels, many minutes as plain Python, so
# ``slow`` (make test-nojit deselects it; make test runs it).
@pytest.mark.slow
@pytest.mark.parametrize("path", FILES_WITH_PLAIN_BLOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path, tmp_path, monkeypatch):
    _run([b for b in python_blocks(path) if b.mark is None], tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", MARKED_BLOCKS, ids=lambda b: b.name)
def test_marked_python_blocks_run(block, tmp_path, monkeypatch):
    reason = _missing(block.mark)
    if reason:
        pytest.skip(f"{block.name}: {reason}")
    _run([block], tmp_path, monkeypatch)


def test_a_failing_block_fails(tmp_path, monkeypatch):
    """The runner reports a broken example with its file and line."""
    doc = tmp_path / "broken.md"
    doc.write_text("text\n\n```python\nx = 1\n```\n\n<!-- doctest: skip-without-module json -->\n"
                   "```python\nassert x == 2, 'x is 1'\n```\n", encoding="utf-8")
    blocks = python_blocks(doc)
    assert [b.line for b in blocks] == [3, 8] and blocks[0].mark is None and blocks[1].mark == (
        "skip-without-module", "json")
    with pytest.raises(AssertionError, match=r"broken.md:8 failed: AssertionError\('x is 1'\)"):
        _run(blocks, tmp_path, monkeypatch)
    assert _missing(("skip-without-module", "no_such_module_here")) == "needs the optional module " \
        "'no_such_module_here'"
    doc.write_text("<!-- doctest: skip-always -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown doctest mark"):
        python_blocks(doc)


# --------------------------------------------------------------------------
# Every public name is documented
# --------------------------------------------------------------------------
PUBLIC_NAMES = sorted({(m, n) for m in PUBLIC_MODULES for n in importlib.import_module(m).__all__})


def _documented_names(text: str) -> set[str]:
    """Identifiers inside inline code spans: `name`, `name(...)`, `module.name`."""
    names = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        names.update(re.findall(r"[A-Za-z_]\w*", span))
    return names


def test_every_public_name_is_in_the_api_doc():
    documented = _documented_names(API_DOC.read_text(encoding="utf-8"))
    missing = [f"{m}.{n}" for m, n in PUBLIC_NAMES if n not in documented]
    assert not missing, f"docs/api.md does not mention {missing}"
    assert len(PUBLIC_NAMES) >= 80


def test_an_undocumented_name_is_caught():
    assert "pack_signs" in _documented_names("a `fastbin.pack_signs(x)` call")
    assert "pack_signs" not in _documented_names("pack_signs outside code")


# --------------------------------------------------------------------------
# Every name the docs mention exists
# --------------------------------------------------------------------------
def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted``, then getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


TEXT = "\n".join(p.read_text(encoding="utf-8") for p in FILES)
IMPORTS = sorted({(m, n.strip()) for m, names in re.findall(r"^from (fastbin[\w.]*) import ([\w, ]+)$", TEXT, re.M)
                  for n in names.split(",")})
DOTTED = sorted(set(re.findall(r"\bfastbin(?:\.\w+)+", TEXT)) - {"fastbin.model"})  # "fastbin.model": a file format
TABLE_FUNCTIONS = sorted(set(re.findall(r"^\| `(\w+)\(", API_DOC.read_text(encoding="utf-8"), re.M)))


def test_the_docs_name_something():
    assert len(IMPORTS) >= 10 and len(DOTTED) >= 15 and len(TABLE_FUNCTIONS) >= 13


#: fastbin modules that import an optional package (an extra) at import time
OPTIONAL_EXTRAS = {"fastbin.sklearn": "sklearn"}


@pytest.mark.parametrize("module, name", IMPORTS)
def test_doc_imports_exist(module, name):
    if module in OPTIONAL_EXTRAS and importlib.util.find_spec(OPTIONAL_EXTRAS[module]) is None:
        pytest.skip(f"{module} needs the optional package {OPTIONAL_EXTRAS[module]!r}")
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted", DOTTED)
def test_doc_dotted_names_exist(dotted):
    _resolve(dotted.rstrip("."))


@pytest.mark.parametrize("name", TABLE_FUNCTIONS)
def test_api_tables_are_public(name):
    import fastbin

    assert name in fastbin.__all__ and callable(getattr(fastbin, name))


# --------------------------------------------------------------------------
# Relative links
# --------------------------------------------------------------------------
def relative_links(path: Path) -> list[tuple[str, Path, str]]:
    """``(link, target path, anchor)`` of every relative Markdown link or image in ``path``."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    links = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z][\w+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        links.append((target, (path.parent / file).resolve() if file else path, anchor))
    return links


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path):
    broken = []
    for link, target, anchor in relative_links(path):
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(link)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_a_broken_link_is_caught(tmp_path):
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# The B file\n", encoding="utf-8")
    doc.write_text("[ok](b.md#the-b-file) [no](c.md) ![img](b.md) [web](https://example.org/x)\n"
                   "```\n[in code](nothing.md)\n```\n", encoding="utf-8")
    links = relative_links(doc)
    assert [(link, target.exists()) for link, target, _ in links] == [
        ("b.md#the-b-file", True), ("c.md", False), ("b.md", True)]
    assert _anchors(tmp_path / "b.md") == {"the-b-file"}
