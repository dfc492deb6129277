"""How a run's tenants are chosen: the known tenants (``discovery``) and the
selection over them (``selection``: names, patterns, exclusions, shards,
``failed``, which may be created).

Before 0.2 ``alembic_recipes.tenants.selection`` was the module that is now
``selection.selection``: its names still read from here, with a
``DeprecationWarning``, until 0.3.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...moved import warn_moved


def __getattr__(name: str) -> Any:
    module = importlib.import_module(f"{__name__}.selection")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warn_moved(f"{__name__}.{name}", f"{__name__}.selection.{name}")
    return getattr(module, name)
