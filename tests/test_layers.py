"""The domain's shape (DESIGN.md, "Layers"): each module of wallet/ imports only its own layer or those below,
with no import circle and no import inside a function to dodge one, and no module past ~600 lines.

A new module must be given a layer here: that is the moment to decide where it belongs.
(`../shared/tools/import-circles wallet` draws the same conclusion about circles from outside the suite.)
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

WALLET = Path(__file__).resolve().parent.parent / "wallet"

# Lowest first. A package named here (coupons, rules, stores, events, webhooks) places all its modules.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("clock", "db", "fast_sql", "errors", "program", "codes", "qr", "barcodes", "scanner", "passwords", "phones",
             "csvfiles"),
    "entities": ("members", "stores", "ledger", "statement", "benefits", "purchases", "coupons", "tokens", "idempotency",
                 "events", "audit", "passes", "fraud", "segments", "influence",
                 "consents", "contact", "currencies", "tiers"),
    "rules engine": ("rules",),
    "use cases": ("till", "enrolment", "referrals", "instore", "triggers", "activity", "webhooks", "worker",
                  "demo", "export", "kpis", "accounts", "campaigns",
                  "erasure", "returns", "adjustments", "social", "contests"),
    "the schema": ("models",),  # gathers every table for Alembic: above everything, imported by nothing here
}
LONGEST = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(WALLET.rglob("*.py")):
        parts = list(path.relative_to(WALLET.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int | None:
    if module == "wallet":
        return -1  # the package's docstring: imports nothing
    top = module.split(".")[1]
    for rank, names in enumerate(LAYERS.values()):
        if top in names:
            return rank
    return None


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported wallet module, line, at top level?) for every import of a wallet module."""
    tree = ast.parse(path.read_text(encoding="utf8"))
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a top-level if/try still run at import time
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(n) for n in ast.walk(node))
    package = module.split(".") + (["__init__"] if path.name == "__init__.py" else [])
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            named = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in named if t in MODULES] or ([base] if base in MODULES else [])
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if alias.name in MODULES]
        found += [(t, node.lineno, id(node) in top_level) for t in targets if t != module]
    return found


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, path in MODULES.items():
        for target, line, _ in _imports(module, path):
            if _layer(target) > _layer(module):
                upward.append(f"{path.relative_to(WALLET.parent)}:{line} {module} -> {target}")
    assert upward == []


def test_no_import_inside_a_function():
    inner = [f"{path.relative_to(WALLET.parent)}:{line} -> {target}"
             for module, path in MODULES.items() for target, line, top in _imports(module, path) if not top]
    assert inner == []


def test_no_import_circle():
    edges = {m: {t for t, _, _ in _imports(m, p)} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    circles = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in MODULES:
        if module not in state:
            walk(module, [module])
    assert circles == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_readable(module):
    assert MODULES[module].read_text(encoding="utf8").count("\n") <= LONGEST


def test_the_check_finds_what_it_looks_for(tmp_path, monkeypatch):
    """The checks above can fail: a late import and an upward import in a made-up module are both found."""
    probe = WALLET / "ledger.py"
    source = probe.read_text(encoding="utf8")
    fake = tmp_path / "ledger.py"
    fake.write_text(source + "\n\ndef _late():\n    from . import till\n    return till\n", encoding="utf8")
    found = _imports("wallet.ledger", fake)
    assert ("wallet.till", source.count("\n") + 4, False) in found
    assert _layer("wallet.till") > _layer("wallet.ledger")
