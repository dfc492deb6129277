"""The record of fleet runs: in the database, written as each run goes.

The table ``alembic_recipes_fleet_run`` holds one row per tenant: its latest
outcome -- status, from and to revision, start, duration, a failure's
one-line cause -- and the run it came from (run id, command, target).  A
fleet run of ``upgrade``, ``downgrade`` or ``stamp`` writes it
(:class:`~.journal.Journal`):

1. when it starts, in one transaction: every selected tenant as ``pending``
   (a tenant whose row already says it finished at this run's target is left
   as it is, so a rerun over a fleet at head writes nothing);
2. each tenant's outcome as soon as it is known: in the tenant's own
   transaction where the record shares its database (schema strategy), right
   after its commit otherwise; a failure right after its rollback;
3. when it ends: the tenants it did not reach, ``not attempted``.

A run killed at any point leaves rows that say what is true: a tenant is
``pending`` until its own commit says otherwise.  ``-x tenant=failed``
(:meth:`~.journal.Journal.resume`) selects the unfinished tenants
(:data:`UNFINISHED`) and every tenant whose version is not the target its
row records.

Where the table lives (:func:`record_location`):

* schema strategy: the shared database, in the ``shared_scope`` schema, else
  the connection's default schema (``public``) -- never a tenant's;
* database strategy: the ``tenants_url`` database, else the shared scope's
  database, else -- for SQLite tenant files -- ``alembic_recipes_fleet_run.db``
  beside them.  A server without either keeps no record (said once).

A table written by an earlier version gets the new columns on the first
write (``ALTER TABLE ... ADD``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.elements import TextClause

from ...database.locks import table_lock
from ...logs import logger_for
from ..model.settings import TenantSettings
from ..model.tenant import RECORD_FILE, RECORD_TABLE
from .claim_table import CLAIM_TABLE

__all__ = [
    "NEEDS_REPAIR",
    "PENDING",
    "RECORD_TABLE",
    "RUNNING",
    "UNFINISHED",
    "Row",
    "forget_tenant",
    "read_rows",
    "record_location",
    "set_outcome",
    "write_outcome",
    "write_rows",
]

log = logger_for(__name__)

PENDING = "pending"
"""Selected by a run that has not reached the tenant (yet, or ever: killed)."""
NOT_ATTEMPTED = "not attempted"
INTERRUPTED = "interrupted (rolled back)"
UNREACHABLE = "server unreachable"
NEEDS_REPAIR = "needs repair"
"""Its revision failed after part of it committed (:mod:`.repair`)."""
RUNNING = "running"
"""A revision of the tenant started (where DDL commits as it runs): it is not
finished unless the tenant's version says so."""
UNFINISHED = (
    PENDING,
    "failed",
    INTERRUPTED,
    NOT_ATTEMPTED,
    UNREACHABLE,
    NEEDS_REPAIR,
    RUNNING,
)
"""Statuses that ``-x tenant=failed`` selects."""
_SAVE_WAIT = 60.0
"""Seconds a write waits for another run's first write (each takes milliseconds)."""
_CHUNK = 500
_PLACEHOLDER = re.compile(r":(\w+)")


@functools.lru_cache(maxsize=32)
def _table(schema: str | None) -> Table:
    """The record's table in *schema* (one object per schema: SQLAlchemy's
    statement cache then compiles each statement once per process)."""
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
        # since the record is written as runs go
        Column("run_id", String(40)),
        Column("command", String(20)),
        Column("target", Text),
        Column("server", String(63)),
        Column("updated", DateTime(timezone=True)),
        # since shard=K/N runs are checked for shards that never ran
        Column("shard", String(20)),
        schema=schema,
    )


@dataclass(frozen=True)
class Row:
    """One tenant's row, as read back."""

    tenant: str
    status: str
    target: str | None
    run_id: str | None
    updated: datetime | None
    to_revision: str | None = None
    error: str | None = None
    shard: str | None = None
    """``K/N`` of the ``-x shard=K/N`` run that wrote it (None: no shard)."""

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED


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


def now() -> datetime:
    """The time a row is written (UTC)."""
    return datetime.now(UTC)


def _values(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A row's column values from a journal entry (:mod:`.journal`)."""
    started = entry.get("started")
    return {
        "tenant": entry["tenant"],
        "status": entry["status"],
        "from_revision": entry.get("from"),
        "to_revision": entry.get("to"),
        "started": datetime.fromisoformat(started) if started else None,
        "seconds": entry.get("seconds"),
        "error": entry.get("error"),
        "run_id": entry.get("run_id"),
        "command": entry.get("command"),
        "target": entry.get("target"),
        "server": entry.get("server"),
        "updated": now(),
        "shard": entry.get("shard"),
    }


def _ensure(conn: Connection, table: Table) -> None:
    """Create the table, or add the columns an earlier version lacked (inside
    the caller's transaction and table lock)."""
    if not conn.dialect.has_table(conn, table.name, table.schema):
        table.create(conn)
        return
    have = {c["name"] for c in inspect(conn).get_columns(table.name, table.schema)}
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name not in have:
            spec = CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {spec}"
            )


def write_rows(
    conn: Connection, schema: str | None, entries: Iterable[Mapping[str, Any]]
) -> None:
    """Set the rows of *entries*' tenants, in one transaction of its own (a
    savepoint inside the caller's), creating the table on first use; runs
    writing at once take turns for the moment it takes."""
    rows = [_values(e) for e in entries]
    if not rows:
        return
    table = _table(schema)
    with (
        conn.begin_nested() if conn.in_transaction() else conn.begin(),
        table_lock(conn, schema, RECORD_TABLE, timeout=_SAVE_WAIT),
    ):
        _ensure(conn, table)
        _upsert(conn, table, rows)


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert *rows*, replacing those of the same tenants (another run may
    write the same tenants meanwhile)."""
    columns = [c.name for c in table.columns if c.name != "tenant"]
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.tenant],
                set_={name: statement.excluded[name] for name in columns},
            ),
            rows,
        )
        return
    if dialect in ("mysql", "mariadb"):
        upsert = mysql.insert(table)
        conn.execute(
            upsert.on_duplicate_key_update(
                {name: upsert.inserted[name] for name in columns}
            ),
            rows,
        )
        return
    names = [row["tenant"] for row in rows]  # elsewhere: replace them
    for start in range(0, len(names), _CHUNK):
        chunk = names[start : start + _CHUNK]
        conn.execute(delete(table).where(table.c.tenant.in_(chunk)))
    conn.execute(insert(table), rows)


def set_outcome(conn: Connection, schema: str | None, entry: Mapping[str, Any]) -> None:
    """Write one tenant's outcome inside the caller's transaction (its row
    was written when the run started; a missing one is inserted)."""
    values = _values(entry)
    done = conn.execute(_update(schema, conn.dialect), values)
    if done.rowcount == 0:
        _upsert(conn, _table(schema), [values])


def write_outcome(
    conn: Connection, schema: str | None, entry: Mapping[str, Any]
) -> None:
    """:func:`set_outcome` in a transaction of its own (a savepoint inside
    the caller's)."""
    with conn.begin_nested() if conn.in_transaction() else conn.begin():
        set_outcome(conn, schema, entry)


@functools.lru_cache(maxsize=32)
def _update(schema: str | None, dialect: Dialect) -> TextClause:
    """``UPDATE`` of one tenant's row, as plain text: built once, it costs
    the statement's round trip and little more (one per tenant)."""
    table = _table(schema)
    preparer = dialect.identifier_preparer
    columns = [c.name for c in table.columns if c.name != "tenant"]
    assignments = ", ".join(f"{preparer.quote(c)} = :{c}" for c in columns)
    return text(
        f"UPDATE {preparer.format_table(table)} SET {assignments}"
        f" WHERE {preparer.quote('tenant')} = :tenant"
    )


def outcome_sql(dialect: Dialect, schema: str | None, entry: Mapping[str, Any]) -> str:
    """The ``UPDATE`` of :func:`set_outcome` as one statement with its values
    written in (each through its type's literal rendering), to end a script
    the tenant's transaction sends anyway: no round trip of its own."""
    values = _values(entry)
    table = _table(schema)
    rendered = {
        name: "NULL" if value is None else _literal(table.c[name].type, dialect, value)
        for name, value in values.items()
    }
    template = str(_update(schema, dialect).text)
    sql = _PLACEHOLDER.sub(lambda m: rendered[m.group(1)], template)  # one pass
    return f"{sql};\n"


def _literal(type_: Any, dialect: Dialect, value: Any) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
        type_ = String()
    render = type_.literal_processor(dialect)
    return str(render(value)) if render is not None else repr(value)


def mark_unreached(
    conn: Connection, schema: str | None, run_id: str, status: str
) -> None:
    """The run's tenants still ``pending`` get *status* (the run ended without
    reaching them), in one transaction of its own."""
    table = _table(schema)
    with conn.begin_nested() if conn.in_transaction() else conn.begin():
        conn.execute(
            update(table)
            .where(table.c.run_id == run_id, table.c.status == PENDING)
            .values(status=status, updated=now())
        )


def read_rows(
    conn: Connection, schema: str | None, tenants: Collection[str] | None = None
) -> list[Row] | None:
    """The rows of *tenants* (all: None), None when no fleet run was recorded
    yet.  Only reads (inside the caller's
    :func:`~alembic_recipes.database.connections.own_read`)."""
    if not conn.dialect.has_table(conn, RECORD_TABLE, schema=schema):
        return None
    table = _table(schema)
    have = {c["name"] for c in inspect(conn).get_columns(RECORD_TABLE, schema)}
    wanted = [table.c.tenant, table.c.status, table.c.to_revision, table.c.error]
    extra = [
        table.c[name]
        for name in ("target", "run_id", "updated", "shard")
        if name in have
    ]
    query = select(*wanted, *extra)
    found: list[Row] = []
    chunks: Sequence[Sequence[str] | None] = (
        [None]
        if tenants is None
        else [sorted(tenants)[i : i + _CHUNK] for i in range(0, len(tenants), _CHUNK)]
    )
    for chunk in chunks:
        statement = query if chunk is None else query.where(table.c.tenant.in_(chunk))
        for row in conn.execute(statement).mappings():
            found.append(
                Row(
                    str(row["tenant"]),
                    str(row["status"]),
                    row.get("target"),
                    row.get("run_id"),
                    row.get("updated"),
                    row.get("to_revision"),
                    row.get("error"),
                    row.get("shard"),
                )
            )
    return found


def forget_tenant(
    conn: Connection, schema: str | None, name: str, renamed: str | None = None
) -> None:
    """Tenant *name*'s rows of the run record and the claims table (in
    *schema*), removed -- or given its new name *renamed* -- in *conn*'s
    transaction; no table, nothing to do."""
    inspector = inspect(conn)
    for table in (RECORD_TABLE, CLAIM_TABLE):
        if not inspector.has_table(table, schema=schema):
            continue
        rows = Table(table, MetaData(), Column("tenant", String), schema=schema)
        if renamed is None:
            conn.execute(delete(rows).where(rows.c.tenant == name))
        else:
            conn.execute(
                update(rows).where(rows.c.tenant == name).values(tenant=renamed)
            )
