"""How a run's tenants are chosen: the known tenants (``discovery``) and the
selection over them (``selection``: names, patterns, exclusions, shards,
``failed``, which may be created).

Before 0.2 ``alembic_recipes.tenants.selection`` was the module that is now
``selection.selection``: its names still read from here, with a
``DeprecationWarning``, until 0.3.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    module = importlib.import_module(f"{__name__}.selection")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} is deprecated and goes in 0.3: use"
        f" {__name__}.selection.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(module, name)
