"""The layers of docs/architecture.md, enforced: every module's imports, read with ast.

A module imports its own package and packages below it, never one above. The domain
packages sit side by side in a fixed order, so that they never import each other in a
cycle; nothing at or below dispatch/ touches sockets, threads, event loops or the
database, web and directory libraries (they belong to the shells).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "vpop"

# From the bottom. Packages on one level may import each other only in this order
# (a later one may import an earlier one).
LAYERS = [
    ("errors",),
    ("radius",),
    ("config", "logs", "progress", "pipeline"),
    ("accounting", "aaa", "isp", "directory", "dynauth", "billing", "broker"),
    ("dispatch",),
    ("store", "provisioning"),
    ("server", "portal"),
    ("cli",),
]
SHELL_ONLY = ("socket", "asyncio", "threading", "sqlalchemy", "flask", "ldap3")
RANK = {name: (level, order) for level, names in enumerate(LAYERS)
        for order, name in enumerate(names)}
DISPATCH = RANK["dispatch"][0]


def package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0] if parts[0] != "__init__" else ""


def imports(path: Path):
    """(line, module) for every import in the file, function-local ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def violations(path: Path) -> list[str]:
    mine = package_of(path)
    found = []
    for line, module in imports(path):
        parts = module.split(".")
        if parts[0] != "vpop":
            if parts[0] in SHELL_ONLY and mine in RANK and RANK[mine][0] <= DISPATCH:
                found.append(f"{path.name}:{line} imports {module} below the shells")
            continue
        theirs = parts[1] if len(parts) > 1 else ""
        if not mine or not theirs or theirs == mine or theirs not in RANK:
            continue  # vpop/__init__.py, vpop itself (its version), one's own package
        if RANK[theirs] > RANK[mine]:
            found.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {module}")
    return found


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {package_of(p) for p in MODULES} - {""}
    assert packages <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path):
    assert violations(path) == []


def test_the_check_finds_an_import_against_the_order(tmp_path, monkeypatch):
    fake = tmp_path / "vpop"
    (fake / "radius").mkdir(parents=True)
    bad = fake / "radius" / "bad.py"
    bad.write_text("import socket\nfrom vpop.store import engine\nfrom vpop.errors import X\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    assert violations(bad) == ["bad.py:1 imports socket below the shells",
                               "radius/bad.py:2 (radius) imports vpop.store"]
