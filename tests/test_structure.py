"""The package's layers, read from its source: what each module may import.

Bottom up (a module imports only its own layer and those below it, and the
module graph has no cycle):

1. ``alembic_internals`` (every use of Alembic's private API), ``logs`` and
   ``moved`` (the old paths and names, deprecated);
2. ``database``: connections, poolers, the lock, timeouts, retries, stops;
3. ``configuration``: the option table, reading options, the settings;
4. ``runtime`` (running env.py) and ``autogenerate`` (the cookbook's hooks);
5. what revision files use: ``replaceable`` objects and the ``lint``;
6. the templates' features: ``data``, ``multidb``, ``tenants`` (in parts
   of its own, bottom up: ``model``, ``selection``, ``records``, ``running``,
   ``driving``, then the entry points);
7. ``metadata``: an application's helpers over them (bootstrap a tenant);
8. the faces: ``__init__``, ``__main__``, ``templates``.

Only ``alembic_internals`` touches Alembic's private names, and no module
looks anything up in ``sys.modules``.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "alembic_recipes"

LAYERS: list[tuple[str, ...]] = [
    ("alembic_internals", "logs", "moved"),
    ("database",),
    ("configuration",),
    ("runtime", "autogenerate"),
    ("replaceable", "lint"),
    ("data", "multidb", "tenants"),
    ("metadata",),
    ("", "__main__", "templates"),
]
"""Bottom up; a module's layer is that of its first name (``""``: the
package's ``__init__``)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _layer(module: str) -> int:
    head = module.split(".")[0]
    found = [i for i, names in enumerate(LAYERS) if head in names]
    assert found, f"{module or '__init__'} is in no layer: add it to LAYERS"
    return found[0]


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """*name* as a module of the package: ``tenants.fleet.Fleet`` (an
    imported name) is ``tenants.fleet``; a package stands for its
    ``__init__``."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    """The package modules *module* imports, at any depth of its code."""
    path = MODULES[module]
    package = (
        module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    )
    package = [p for p in package if p]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                prefix = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "alembic_recipes":
                prefix = node.module.split(".")[1:]
            else:
                continue
            found |= {_resolve(".".join([*prefix, a.name])) for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {
                _resolve(".".join(a.name.split(".")[1:]))
                for a in node.names
                if a.name.split(".")[0] == "alembic_recipes"
            }
    return found - {module}


GRAPH = {module: _imports(module) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES), ids=lambda m: m or "__init__")
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    above = {m for m in GRAPH[module] if _layer(m) > _layer(module)}
    assert not above, f"{module or '__init__'} imports {sorted(above)} from above"


TENANT_LAYERS: list[tuple[str, ...]] = [
    ("model",),
    ("selection",),
    ("records",),
    ("running",),
    ("driving",),
    ("", "runner", "lifecycle", "dropping"),
]
"""The tenants package bottom up, by its second name: what a tenant is, how a
selection is made, what is recorded, how one tenant runs, how a run is
driven, the entry points."""


def _tenant_layer(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else ""
    found = [i for i, names in enumerate(TENANT_LAYERS) if part in names]
    assert found, f"{module} is in no layer of the tenants package: add it"
    return found[0]


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m.startswith("tenants"))
)
def test_no_tenants_module_imports_a_part_above_its_own(module: str) -> None:
    inside = {m for m in GRAPH[module] if m.startswith("tenants")}
    above = {m for m in inside if _tenant_layer(m) > _tenant_layer(module)}
    assert not above, f"{module} imports {sorted(above)} from above"


def test_the_module_graph_has_no_cycle() -> None:
    try:
        tuple(TopologicalSorter(GRAPH).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' imports '.join(reversed(error.args[1]))}")


SOURCES = sorted(PACKAGE.rglob("*.py"))


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
