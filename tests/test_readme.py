"""Every name the README documents exists: its ``from fastbin... import``
lines, every dotted ``fastbin.x.y`` it mentions, and every function of its API
tables (as a public name of the facade)."""
import importlib
import re
from pathlib import Path

import pytest

import fastbin

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


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


IMPORTS = sorted({(m, n.strip()) for m, names in re.findall(r"^from (fastbin[\w.]*) import ([\w, ]+)$", README, re.M)
                  for n in names.split(",")})
DOTTED = sorted(set(re.findall(r"\bfastbin(?:\.\w+)+", README)) - {"fastbin.model"})  # "fastbin.model": a file format
TABLE_FUNCTIONS = sorted(set(re.findall(r"^\| `(\w+)\(", README, re.M)))


def test_the_readme_documents_something():
    assert len(IMPORTS) >= 10 and len(DOTTED) >= 15 and len(TABLE_FUNCTIONS) >= 13


@pytest.mark.parametrize("module, name", IMPORTS)
def test_readme_imports_exist(module, name):
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted", DOTTED)
def test_readme_dotted_names_exist(dotted):
    _resolve(dotted.rstrip("."))


@pytest.mark.parametrize("name", TABLE_FUNCTIONS)
def test_readme_api_tables_are_public(name):
    assert name in fastbin.__all__ and callable(getattr(fastbin, name))
