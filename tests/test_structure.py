"""The package's layers, read from its source: what each module may import.

Bottom up: ``alembic_internals`` (Alembic's private API) and ``connections``
(the sync/async bridge) import nothing above them; ``poolers`` (PgBouncer
in front), ``locks``, ``blocking``
(who held a lock), ``cancelling`` and ``stopping`` (a stop on a signal),
``online_ddl``, ``timeouts`` and ``retries`` build on those; ``options``,
``option_table`` and ``settings`` (configuration) import no runner;
``execution`` runs env.py's function under the lock; only ``alembic_internals``
touches Alembic's private names, and no module looks
anything up in ``sys.modules``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "alembic_recipes"

# module -> the package modules it may import (None: any)
ALLOWED: dict[str, set[str]] = {
    "alembic_internals": set(),
    "connections": {"alembic_internals"},
    "logs": set(),
    "poolers": {"alembic_internals", "connections", "logs"},
    "locks": {"alembic_internals", "connections", "logs", "poolers", "stopping"},
    "options": {"alembic_internals", "option_table"},
    "option_table": set(),
    "filters": set(),
    "config_text": {"option_table"},
    "settings": {
        "alembic_internals",
        "connections",
        "filters",
        "logs",
        "option_table",
        "options",
        "timeouts",
    },
    "output": {"alembic_internals"},
    "blocking": {"connections", "logs"},
    "cancelling": {"blocking", "logs"},
    "stopping": {"cancelling", "logs"},
    "online_ddl": {"logs"},
    "timeouts": {"blocking", "cancelling", "connections", "online_ddl"},
    "retries": {"blocking", "connections", "logs", "stopping"},
    "execution": {
        "connections",
        "locks",
        "options",
        "poolers",
        "retries",
        "settings",
        "timeouts",
    },
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _imports(path: Path) -> set[str]:
    """Package modules *path* imports (top-level names: ``tenants``, not
    ``tenants.fleet``)."""
    tree = ast.parse(path.read_text())
    package = (
        _module_name(path).split(".")[:-1]
        if path.name != "__init__.py"
        else (_module_name(path).split(".") if _module_name(path) else [])
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = (
                    [target] if node.module else [[*base, a.name] for a in node.names]
                )
                found |= {".".join(t) for t in names if t}
            elif node.module and node.module.startswith("alembic_recipes"):
                found.add(node.module.removeprefix("alembic_recipes").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("alembic_recipes."):
                    found.add(alias.name.removeprefix("alembic_recipes."))
    return {name.split(".")[0] for name in found if name}


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(module: str) -> None:
    imported = _imports(PACKAGE / f"{module}.py") - {module}
    assert imported <= ALLOWED[module], f"{module} imports {imported - ALLOWED[module]}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sys_modules_lookups(path: Path) -> None:
    assert "sys.modules" not in path.read_text()


ALEMBIC_INTERNAL = {"static_output", "context_opts", "migration_fn", "impl"}
"""Names of Alembic's internals that are not underscored (``impl``: the
migration context's dialect implementation)."""
PUBLIC_UNDERSCORED = {"_replace", "_exit", "_asdict", "_fields"}
"""Underscored but public: a named tuple's methods, ``os._exit``."""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_attributes_only_in_alembic_internals(path: Path) -> None:
    """Read as code (not text): no ``x._name`` on anything but ``self`` /
    ``cls``, and none of Alembic's internal names, outside the compatibility
    module."""
    if path.name == "alembic_internals.py":
        return
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        name = node.attr
        private = name.startswith("_") and not name.startswith("__")
        where = f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)}"
        assert not private or name in PUBLIC_UNDERSCORED, where
        assert name not in ALEMBIC_INTERNAL, where


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_alembic_private_names_only_in_alembic_internals(path: Path) -> None:
    """No ``context._proxy``, ``_upgrade_revs``, ``._version``, ``_reverse``,
    ``._copy()`` or ``context_opts`` outside the compatibility module."""
    if path.name == "alembic_internals.py":
        return
    text = path.read_text()
    for private in (
        "_proxy",
        "_upgrade_revs",
        "._version",
        "._reverse",
        "._copy(",
        "context_opts",
        "migration_fn",
    ):
        assert private not in text, f"{path.name} uses Alembic's {private}"
