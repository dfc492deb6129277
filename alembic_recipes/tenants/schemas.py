"""The ``schema`` strategy: one PostgreSQL database, one schema per tenant.

Per tenant, in its own transaction, the tenant's schema is the only one on
the ``search_path`` (``set_config(..., true)``: a bound parameter, undone when
the transaction ends, nothing formatted into SQL), and env.py migrates with
``version_table_schema=<tenant>``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from alembic import context
from sqlalchemy import (
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateSchema

from ..alembic_internals import (
    VERSION_TABLE,
    steps_until,
    transaction_alembic_may_end,
)
from ..blocking import SCHEMAS_KEY
from ..connections import connection_lost, first_line, own_read
from ..execution import connect_and_run
from ..logs import logger_for
from ..poolers import tenant_transaction
from .compiled import CompiledPaths, execute_script
from .config import Tenant
from .discovery import known_tenants
from .fleet import MIGRATED_ELSEWHERE, Fleet, Outcome
from .interrupts import stopping
from .record import failed_tenants, save_record

__all__ = ["SchemaTenants", "schema_scope"]

log = logger_for(__name__)
T = TypeVar("T")


_CHUNK = 100
"""Tenants per version read: statements of a bounded size, each in a
transaction of its own -- reading a table locks it until the transaction
ends, and PostgreSQL's lock table holds about 64 per connection (10,000
tenants at once failed with "out of shared memory")."""

_STATE = text(
    # per name: the schema, whether it has a version table, and its versions,
    # read by the server (query_to_xml runs one small query per table) in one
    # static statement -- a UNION ALL of the tables written out by the client
    # cost 9.9 ms per 100 tenants on a new connection, this 8.3, and the
    # client no longer builds 100 bound parameters.  The schemas by a join,
    # not "= ANY(...)": 15 ms for 5,000 names, not 700.  The version table by
    # its qualified name (to_regclass, then pg_class by oid: one index lookup
    # each): matched on pg_class by name, in a join or an EXISTS, the planner
    # may read every tenant's version table for each name -- 9.6 ms per
    # tenant at 10,000 schemas
    "SELECT nspname, kind IN ('r', 'p') IS TRUE, CASE WHEN kind IN ('r', 'p')"
    " THEN CAST(xpath('/table/row/v/text()', query_to_xml(format("
    "'SELECT version_num AS v FROM %I.%I', nspname, CAST(:table AS text)),"
    " false, false, '')) AS text[]) END"
    " FROM (SELECT n.nspname, (SELECT c.relkind FROM pg_class c WHERE c.oid ="
    " to_regclass(format('%I.%I', n.nspname, CAST(:table AS text)))) AS kind"
    " FROM unnest(CAST(:names AS text[])) AS s(name)"
    " JOIN pg_namespace n ON n.nspname = s.name) AS found"
)


def _schema_state(
    conn: Connection, names: Sequence[str]
) -> tuple[set[str], set[str], dict[str, list[str]]]:
    """Existing schemas among *names*, those with a version table, and their
    versions: one statement per :data:`_CHUNK` of names."""
    existing: set[str] = set()
    with_table: set[str] = set()
    versions: dict[str, list[str]] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        with own_read(conn):
            rows = conn.execute(_STATE, {"names": chunk, "table": VERSION_TABLE})
            for schema, has_table, found in rows:
                existing.add(schema)
                if has_table:
                    with_table.add(schema)
                if found:  # XML text: "&", "<" and ">" come back escaped
                    versions[schema] = [html.unescape(v) for v in found]
    return existing, with_table, versions


@contextmanager
def _default_schema(conn: Connection, schema: str) -> Iterator[None]:
    """Reflection (autogenerate) defaults to the tenant's schema meanwhile."""
    dialect = conn.dialect
    previous = dialect.default_schema_name
    dialect.default_schema_name = schema
    try:
        yield
    finally:
        dialect.default_schema_name = previous


def _shared_only(conn: Connection, shared: str, schema: str) -> frozenset[str]:
    """Tables of schema *shared* that schema *schema* has none of."""
    rows = conn.scalars(
        text(
            "SELECT tablename FROM pg_tables WHERE schemaname = :shared EXCEPT"
            " SELECT tablename FROM pg_tables WHERE schemaname = :schema"
        ),
        {"shared": shared, "schema": schema},
    )
    return frozenset(rows)


def _search_path(conn: Connection, value: str, *, local: bool = True) -> None:
    conn.execute(select(func.set_config("search_path", value, local)))


@contextmanager
def schema_scope(
    conn: Connection,
    schema: str,
    *,
    create: bool = False,
    path: Sequence[str] = (),
) -> Iterator[None]:
    """A transaction in which *schema* is the only schema on the search_path
    (or the schemas of *path*: the tenant's, then the shared one).

    Its own transaction, or a SAVEPOINT when the caller's transaction is open
    (the caller's search_path is restored afterwards).  *create* creates the
    schema first.  Reflection defaults to the schema meanwhile.  Its own
    transaction is one env.py's migration context may end: after an
    ``autocommit_block()`` the next transaction, and the block itself (on the
    session, put back at the end), have the same search_path.
    """
    quote = conn.dialect.identifier_preparer.quote_identifier
    value = ", ".join(quote(name) for name in path or [schema])
    conn.info[SCHEMAS_KEY] = list(path or [schema])  # who blocks, on a timeout
    try:
        if conn.in_transaction():
            with _in_savepoint(conn, value):
                if create:
                    conn.execute(CreateSchema(schema, if_not_exists=True))
                with _default_schema(conn, schema):
                    yield
            return
        with _on_every_transaction(conn, value), transaction_alembic_may_end(conn):
            if create:
                conn.execute(CreateSchema(schema, if_not_exists=True))
            with _default_schema(conn, schema):
                yield
    finally:
        conn.info.pop(SCHEMAS_KEY, None)


@contextmanager
def _in_savepoint(conn: Connection, value: str) -> Iterator[None]:
    """Inside the caller's transaction: a SAVEPOINT, the caller's search_path
    put back afterwards."""
    previous = conn.scalar(select(func.current_setting("search_path")))
    with conn.begin_nested():
        _search_path(conn, value)
        yield
    _search_path(conn, str(previous))


@contextmanager
def _on_every_transaction(conn: Connection, value: str) -> Iterator[None]:
    """Meanwhile every transaction on *conn* starts with search_path *value*
    (``SET LOCAL``); in autocommit mode the session's is set, and put back
    when the scope ends."""
    previous: list[str] = []

    def on_begin(c: Connection) -> None:
        if c.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            if not previous:
                setting = c.scalar(select(func.current_setting("search_path")))
                previous.append(str(setting))
            _search_path(c, value, local=False)
        else:
            _search_path(c, value)

    event.listen(conn, "begin", on_begin)
    try:
        yield
    finally:
        event.remove(conn, "begin", on_begin)
        if previous and not conn.invalidated and not conn.closed:
            with own_read(conn):
                _search_path(conn, previous[0], local=False)


def _refresh(
    name: str,
    state: tuple[set[str], set[str], dict[str, list[str]]],
    existing: set[str],
    with_table: set[str],
    versions: dict[str, list[str]],
) -> None:
    """Replace what the batched read knew of tenant *name* by a fresh read."""
    fresh_existing, fresh_with_table, fresh_versions = state
    for known, fresh in ((existing, fresh_existing), (with_table, fresh_with_table)):
        known.discard(name)
        known.update(fresh)
    versions[name] = fresh_versions.get(name, [])


class SchemaTenants:
    """The schema strategy's tenants (a :class:`~.strategy.TenantStrategy`):
    one connection to the shared database, one batched read, then one tenant
    at a time, each in its own transaction under its own lock."""

    def __init__(
        self, fleet: Fleet, migrate: Callable[[Connection, Tenant], None]
    ) -> None:
        self.fleet = fleet
        self.migrate = migrate
        self._conn: Connection | None = None
        self._dialect: Dialect | None = None
        self.caller_txn = False
        self.existing: set[str] = set()
        self.with_table: set[str] = set()
        self.versions: dict[str, list[str]] = {}
        settings = fleet.settings
        # an upgrade to the one head: replay once-rendered scripts where allowed
        self.compiled = (
            CompiledPaths(fleet.script, fleet.targets[0], settings.compiled)
            if settings.compiled != "never"
            and not fleet.shared
            and fleet.command == "upgrade"
            and fleet.skip_at_head
            and len(fleet.targets) == 1
            else None
        )

    def on_connection(self, fn: Callable[[], T]) -> T:
        """Call *fn* with this strategy's connection open: the database's (a
        caller's shared one, or a new one), holding no database-wide lock --
        each tenant takes its own."""

        def bound(conn: Connection) -> T:
            previous, self._conn = self._conn, conn
            try:
                return fn()
            finally:
                self._conn = previous

        settings = self.fleet.settings
        return connect_and_run(settings, bound, lock=False, section=settings.section)

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "only inside on_connection()"
        return self._conn

    def select(self) -> list[str]:
        """The tenants of this run, and what one batched read knows of them."""
        self.caller_txn = self.conn.in_transaction()  # before we touch it: whose?
        with own_read(self.conn):
            names = self.fleet.select(self.conn, self.recorded)
        self.take(names)
        return names

    def known(self) -> list[str]:
        """The known tenants of this database."""
        with own_read(self.conn):
            return known_tenants(self.fleet.settings, self.conn)

    def recorded(self) -> list[str] | None:
        """The tenants this database's run record has unfinished."""
        with own_read(self.conn):
            return failed_tenants(self.conn, self.fleet.settings.shared)

    def take(self, names: Sequence[str]) -> None:
        """One batched read of *names*' schemas and versions."""
        conn = self.conn
        self._dialect = conn.dialect
        self.existing, self.with_table, self.versions = _schema_state(conn, names)
        with own_read(conn):
            missing = [n for n in names if n not in self.existing]
            self.fleet.selection.load_listed(conn, missing)

    def save_record(self, only: Collection[str] | None = None) -> None:
        """Store this run's outcomes in the record (:mod:`.record`), in the
        shared database's shared-scope (or default) schema."""
        shared = self.fleet.settings.shared
        self.fleet.save_record(
            lambda lines: save_record(self.conn, shared, lines), only
        )

    def current(self, name: str) -> list[str] | None:
        """Tenant *name*'s versions from the batched read; None when its
        schema does not exist."""
        return self.versions.get(name, []) if name in self.existing else None

    def prepare_workers(self, names: Sequence[str]) -> None:
        """Render, once and before forking, every replay script the workers
        will need (each path from a starting revision): they inherit them."""
        if self.compiled is None or self._dialect is None:
            return
        for name in names:
            if not self.at_head(name):
                before = self.versions.get(name, [])
                has_table = name in self.with_table
                self.compiled.segments_for(self._dialect, before, name, has_table)

    def at_head(self, name: str) -> bool:
        """At head according to the batched read (nothing to lock for)."""
        return name in self.existing and self.fleet.at_head(self.versions.get(name, []))

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name*; what it did.

        One transaction: its search_path and timeouts, the tenant's lock
        (transaction-level; kept past a commit ``autocommit_block()`` makes),
        a fresh read of its version, its schema when missing, then the
        replayed script or Alembic's run, one commit.  A replay that fails
        rolls the whole tenant back, and Alembic runs it again.
        """
        if self.at_head(name):
            return None
        fleet = self.fleet
        if fleet.prints_current:  # status: the batched read has it all
            versions = self.current(name) or []
            if name in self.existing:
                fleet.print_current(versions)
            return versions, versions
        try:
            return self._one(name, replay=self.compiled is not None)
        except _ReplayFailed as failed:
            error = failed.error
        # outside the except block: Alembic's own failure, if any, is not
        # chained to the replay's
        log.info(
            "%s: the replayed script failed (%s: %s); rolled back, running"
            " this tenant through Alembic instead",
            name,
            type(error).__name__,
            first_line(error),
        )
        return self._one(name, replay=False)

    def _one(self, name: str, *, replay: bool) -> Outcome:
        conn, fleet, settings = self.conn, self.fleet, self.fleet.settings
        tenant = settings.tenant(name)
        scope = schema_scope(conn, name, path=tenant.search_path)
        with tenant_transaction(conn), scope, fleet.lock(conn, schema=name):
            if settings.locks():  # trust only what we read under the lock
                self._refresh(conn, name)
            before = self.versions.get(name, [])
            missing = name not in self.existing
            if not missing and fleet.at_head(before):
                return MIGRATED_ELSEWHERE
            if missing and not fleet.selection.may_create(name):
                if fleet.command == "current":
                    return before, before
                raise fleet.selection.missing(name)
            if missing:
                conn.execute(CreateSchema(name, if_not_exists=True))
            if replay and self._replay(conn, tenant, before):
                self.existing.add(name)
                return before, [fleet.targets[0]]
            if tenant.shared_schema and fleet.autogenerates:
                tenant = replace(
                    tenant, shared_tables=_shared_only(conn, tenant.shared_schema, name)
                )
            self.migrate(conn, tenant)
            after = list(context.get_context().get_current_heads())
        self.existing.add(name)
        return before, after

    def _refresh(self, conn: Connection, name: str) -> None:
        """Read tenant *name*'s versions again (under its lock): only them
        when the batched read found its version table -- a tenant's version
        table is not dropped while migrations run -- else its whole state."""
        if name in self.with_table:
            quote = conn.dialect.identifier_preparer.quote
            table = f"{quote(name)}.{quote(VERSION_TABLE)}"
            rows = conn.exec_driver_sql(f"SELECT version_num FROM {table}")
            self.versions[name] = [str(version) for (version,) in rows]
            return
        state = _schema_state(conn, [name])
        _refresh(name, state, self.existing, self.with_table, self.versions)

    def _replay(self, conn: Connection, tenant: Tenant, before: list[str]) -> bool:
        """Take *tenant* to the destination in its transaction, segment by
        segment (:class:`~.compiled.Segment`): the replayed scripts, and
        Alembic's run of the revisions that are not replayed; False when
        nothing of the path is replayed (the caller runs Alembic).  A
        script's failure is raised as :class:`_ReplayFailed` -- the tenant
        rolls back, and Alembic runs it and reports the failing statement the
        usual way: the revision file, the line, the one SQL (a lock timeout
        too: Alembic's run meets the lock again, its timeout names the
        statement and leads to the retry after the other tenants).  A lost
        connection, or a stop, is raised as is."""
        assert self.compiled is not None
        has_table = tenant.name in self.with_table
        segments = self.compiled.segments_for(
            conn.dialect, before, tenant.name, has_table
        )
        if segments is None:
            return False
        for segment in segments:
            if segment.sql is None:
                with steps_until(segment.stop):
                    self.migrate(conn, tenant)
                continue
            try:
                execute_script(conn, segment.sql)
            except Exception as exc:
                if stopping() or connection_lost(exc):
                    raise
                raise _ReplayFailed(exc) from exc
        return True


class _ReplayFailed(Exception):
    """A tenant's replayed script failed (:attr:`error`); Alembic runs it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
