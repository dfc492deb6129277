"""Several databases in one environment, sync and async engines mixed, all-or-nothing.

``databases = main, analytics`` in ``[alembic]``, and a ``[main]`` /
``[analytics]`` section each with its ``sqlalchemy.url`` (sync or async: the
URL's dialect decides).  Online, :func:`run_databases` opens every selected
database, begins a transaction on each, migrates them all, then commits all;
any failure rolls back every one.  Sync and async connections run side by side
inside one greenlet on one event loop.  Databases whose DDL is not
transactional (MySQL, MariaDB) are migrated last, so a failure elsewhere never
leaves them half-applied.  ``two_phase = true`` prepares every PostgreSQL
transaction before MySQL/MariaDB are migrated and before any commit.
"""

from __future__ import annotations

from .databases import (
    Database,
    DatabaseSettings,
    database_names,
    offline_databases,
    selected_databases,
)
from .running import run_databases

__all__ = [
    "Database",
    "DatabaseSettings",
    "database_names",
    "offline_databases",
    "run_databases",
    "selected_databases",
]
