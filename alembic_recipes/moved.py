"""The module paths of 0.1, importable with a ``DeprecationWarning`` until 0.3.

0.2 grouped the top-level modules by concern (:mod:`~alembic_recipes.database`,
:mod:`~alembic_recipes.configuration`, :mod:`~alembic_recipes.autogenerate`,
:mod:`~alembic_recipes.runtime`, :mod:`~alembic_recipes.metadata`), and the
tenants package into parts (:mod:`~alembic_recipes.tenants`).  Revision
templates written before then say ``import alembic_recipes.formatting``; that
still works: the old name is a module that forwards every attribute to the new
one, and importing it warns once, naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["ALSO", "MOVED", "install", "warn_moved"]

MOVED: dict[str, str] = {
    f"alembic_recipes.{old}": f"alembic_recipes.{new}"
    for old, new in {
        "blocking": "database.blocking",
        "cancelling": "database.cancelling",
        "connections": "database.connections",
        "locks": "database.locks",
        "online_ddl": "database.online_ddl",
        "poolers": "database.poolers",
        "retries": "database.retries",
        "stopping": "database.stopping",
        "timeouts": "database.timeouts",
        "config_text": "configuration.config_text",
        "option_table": "configuration.option_table",
        "options": "configuration.options",
        "settings": "configuration.settings",
        "autogen": "autogenerate.recipes",
        "filters": "configuration.filters",
        "formatting": "autogenerate.formatting",
        "commands": "runtime.commands",
        "execution": "runtime.execution",
        "output": "runtime.output",
        "apply": "metadata.apply",
        "bootstrap": "metadata.bootstrap",
        "heads": "metadata.heads",
        "tables": "metadata.tables",
        # the tenants package, in parts by concern since 0.2
        "tenants.config": "tenants.model.settings",
        "tenants.names": "tenants.model.names",
        "tenants.rollout": "tenants.model.rollout",
        "tenants.discovery": "tenants.selection.discovery",
        "tenants.claim_table": "tenants.records.claim_table",
        "tenants.journal": "tenants.records.journal",
        "tenants.progress": "tenants.records.progress",
        "tenants.record": "tenants.records.record",
        "tenants.repair": "tenants.records.repair",
        "tenants.report": "tenants.records.report",
        "tenants.report_file": "tenants.records.report_file",
        "tenants.compiled": "tenants.running.compiled",
        "tenants.databases": "tenants.running.databases",
        "tenants.extensions": "tenants.running.extensions",
        "tenants.interface": "tenants.running.interface",
        "tenants.schemas": "tenants.running.schemas",
        "tenants.servers": "tenants.running.servers",
        "tenants.strategy": "tenants.running.strategy",
        "tenants.tenant_free": "tenants.running.tenant_free",
        "tenants.claiming": "tenants.driving.claiming",
        "tenants.claims": "tenants.driving.claims",
        "tenants.fleet": "tenants.driving.fleet",
        "tenants.parallel": "tenants.driving.parallel",
        "tenants.shared": "tenants.driving.shared",
    }.items()
}
"""Old module path -> new module path.  (``tenants.selection``, now the
package, forwards its old names itself.)"""

ALSO: dict[str, tuple[str, ...]] = {
    f"alembic_recipes.{old}": tuple(f"alembic_recipes.{m}" for m in more)
    for old, more in {
        "connections": ("database.engines", "database.errors"),
        "settings": ("configuration.reader",),
        "tenants.config": ("tenants.model.tenant", "tenants.model.reading"),
        "tenants.journal": ("tenants.records.resume",),
        "tenants.report": ("tenants.records.outcomes", "tenants.records.summary"),
        "tenants.schemas": (
            "tenants.running.schema_scope",
            "tenants.running.schema_state",
        ),
        "tenants.databases": ("tenants.running.tenant_database",),
        "tenants.compiled": ("tenants.running.segments",),
        "tenants.fleet": (
            "tenants.running.run",
            "tenants.driving.waves",
            "tenants.driving.plan",
        ),
    }.items()
    if more
}
"""Old module path -> the modules that took the rest of its names (a module
split in two): an old name is looked up in each, after the new path."""


def warn_moved(old: str, new: str, *, stacklevel: int = 2) -> None:
    """The one ``DeprecationWarning`` of an old name or path *old* (*new*:
    what to use); *stacklevel* as :func:`warnings.warn` counts it from the
    caller."""
    warnings.warn(
        f"{old} is deprecated and goes in 0.3: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


class _Forward(importlib.abc.Loader):
    """Makes the old module: every attribute read goes to the new one (and
    to those that took the rest of its names)."""

    def __init__(self, target: str, also: tuple[str, ...] = ()) -> None:
        self.target = target
        self.also = also

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None  # the default: an empty module named as asked

    def exec_module(self, module: ModuleType) -> None:
        targets = [importlib.import_module(m) for m in (self.target, *self.also)]
        warn_moved(module.__name__, self.target)

        def forward(name: str) -> object:
            for target in targets:
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(
                f"module {module.__name__!r} has no attribute {name!r}"
            )

        public = [n for target in targets for n in getattr(target, "__all__", [])]
        vars(module).update(
            __doc__=f"Deprecated: moved to :mod:`{self.target}`.",
            __all__=list(dict.fromkeys(public)),
            __getattr__=forward,
            __dir__=lambda: sorted({n for target in targets for n in dir(target)}),
        )


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the old paths, after the normal finders found no file there."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        loader = _Forward(new, ALSO.get(fullname, ()))
        return importlib.util.spec_from_loader(fullname, loader)


def install() -> None:
    """Make the old paths importable (once per interpreter)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
