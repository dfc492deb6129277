"""Replaceable objects -- views, materialized views, functions, procedures,
triggers -- declared once and created, dropped and replaced reversibly by
revisions (the cookbook's "Replaceable Objects", for PostgreSQL, SQLite and
MySQL/MariaDB).

* :mod:`.objects` -- the declarations and their SQL per database;
* :mod:`.operations` -- ``op.create_view()``, ``op.drop_view()``,
  ``op.replace_view()`` ... (importing this package registers them);
* :mod:`.references` -- ``replaces="<revision>.<attribute>"``, checked when
  revisions load;
* :mod:`.autogenerate` -- objects registered on the metadata compared with the
  database by ``alembic revision --autogenerate``.
"""

from __future__ import annotations

from . import operations as _operations  # noqa: F401 - registers op.create_view() ...
from .autogenerate import register_objects
from .objects import (
    Function,
    MaterializedView,
    Procedure,
    ReplaceableObject,
    Trigger,
    View,
)
from .references import check_references

__all__ = [
    "Function",
    "MaterializedView",
    "Procedure",
    "ReplaceableObject",
    "Trigger",
    "View",
    "check_references",
    "register_objects",
]
