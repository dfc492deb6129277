"""The record of fleet runs, where every replica and every runner machine sees it.

After each fleet run of ``upgrade``, ``downgrade`` or ``stamp``, every selected
tenant's outcome -- status, from and to revision, start, duration, a
failure's one-line cause -- replaces that tenant's row in the table
``alembic_recipes_fleet_run``: per tenant the latest outcome, so shards
running at once, and later runs over a few tenants, each update their own
rows.  ``-x tenant=failed`` selects the tenants whose latest outcome is
failed, interrupted or not attempted.

Where the table lives (:func:`record_location`):

* schema strategy: the shared database, in the ``shared_scope`` schema, else
  the default schema (``public``);
* database strategy: the ``tenants_url`` database, else the shared scope's
  database, else -- for SQLite tenant files -- ``alembic_recipes_fleet_run.db``
  beside them.  A server without either keeps no record (said once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection, make_url

from ..connections import own_read
from ..locks import table_lock
from ..logs import logger_for
from .config import RECORD_TABLE, TenantSettings

__all__ = [
    "RECORD_FILE",
    "RECORD_TABLE",
    "UNFINISHED",
    "failed_tenants",
    "record_location",
    "save_record",
]

log = logger_for(__name__)

UNFINISHED = ("failed", "interrupted (rolled back)", "not attempted")
"""Statuses that ``-x tenant=failed`` selects."""
RECORD_FILE = "alembic_recipes_fleet_run.db"
_AT_HEAD = "already at head"
_SAVE_WAIT = 60.0
"""Seconds a save waits for another run's save (each takes milliseconds)."""


def _table(schema: str | None) -> Table:
    return Table(
        RECORD_TABLE,
        MetaData(),
        Column("tenant", String(63), primary_key=True),
        Column("status", String(40), nullable=False),
        Column("from_revision", Text),
        Column("to_revision", Text),
        Column("started", DateTime(timezone=True)),
        Column("seconds", Float),
        Column("error", Text),
        schema=schema,
    )


def record_location(settings: TenantSettings) -> tuple[str | None, str | None]:
    """``(URL, schema)`` of the database strategy's record (``None`` URL: the
    schema strategy's own connection; ``(None, None)`` with no place for it)."""
    if settings.strategy == "schema":
        return None, settings.shared
    if settings.tenants_url:
        return settings.tenants_url, None
    if settings.shared:
        return settings.tenant(settings.shared).url, None
    url = make_url(settings.tenant("placeholder").url)
    if url.get_backend_name() == "sqlite" and url.database:
        beside = Path(url.database).parent / RECORD_FILE
        return str(url.set(database=str(beside))), None
    return None, None


def save_record(
    conn: Connection, schema: str | None, entries: Iterable[Mapping[str, Any]]
) -> None:
    """Replace the rows of *entries*' tenants with their outcomes, in one
    transaction (created on first use; concurrent runs take turns).  A
    tenant found already at head keeps a row that says it finished at that
    revision: a rerun over a fleet at head writes nothing."""
    rows = [
        {
            "tenant": e["tenant"],
            "status": e["status"],
            "from_revision": e.get("from"),
            "to_revision": e.get("to"),
            "started": datetime.fromisoformat(e["started"])
            if e.get("started")
            else None,
            "seconds": e.get("seconds"),
            "error": e.get("error"),
        }
        for e in entries
    ]
    table = _table(schema)
    with own_read(conn):
        rows = _changed(conn, table, rows)
    if not rows:
        return  # a no-op run over finished tenants: nothing to write, no commit
    with (
        conn.begin_nested() if conn.in_transaction() else conn.begin(),
        table_lock(conn, schema, RECORD_TABLE, timeout=_SAVE_WAIT),
    ):
        table.create(conn, checkfirst=True)
        names = [row["tenant"] for row in rows]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            conn.execute(delete(table).where(table.c.tenant.in_(chunk)))
        conn.execute(insert(table), rows)


def _changed(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """*rows* without those of tenants already at head whose recorded row is
    finished at the same revision (read first, in a transaction of its own
    when not in the caller's)."""
    at_head = {r["tenant"]: r["to_revision"] for r in rows if r["status"] == _AT_HEAD}
    if not at_head or not conn.dialect.has_table(conn, RECORD_TABLE, table.schema):
        return rows
    kept: set[str] = set()
    names = sorted(at_head)
    for start in range(0, len(names), 500):
        query = select(table.c.tenant, table.c.to_revision).where(
            table.c.tenant.in_(names[start : start + 500]),
            table.c.status.not_in(UNFINISHED),
        )
        kept.update(t for t, to in conn.execute(query) if at_head[t] == to)
    return [r for r in rows if not (r["status"] == _AT_HEAD and r["tenant"] in kept)]


def failed_tenants(conn: Connection, schema: str | None) -> list[str] | None:
    """Tenants whose latest recorded outcome is unfinished, in name order;
    None when no fleet run was recorded.  Only reads (inside the caller's
    :func:`~alembic_recipes.connections.own_read`)."""
    if not conn.dialect.has_table(conn, RECORD_TABLE, schema=schema):
        return None
    table = _table(schema)
    query = select(table.c.tenant).where(table.c.status.in_(UNFINISHED))
    return sorted(str(name) for name in conn.scalars(query))
