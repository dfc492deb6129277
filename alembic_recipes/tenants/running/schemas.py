"""The ``schema`` strategy: one PostgreSQL database, one schema per tenant.

Per tenant, in its own transaction, the tenant's schema is the only one on
the ``search_path`` (``set_config(..., true)``: a bound parameter, undone when
the transaction ends, nothing formatted into SQL), and env.py migrates with
``version_table_schema=<tenant>``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
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

from ...alembic_internals import (
    VERSION_TABLE,
    steps_until,
    transaction_alembic_may_end,
)
from ...database.blocking import SCHEMAS_KEY
from ...database.connections import (
    OWN_READ,
    connection_lost,
    display_url,
    engine_from_options,
    own_read,
    rolled_back,
    run_with_connection,
)
from ...database.poolers import tenant_transaction
from ...database.stopping import guarded, requested
from ...database.timeouts import LOCAL_SETTINGS, TAKES_LOCAL_SETTINGS
from ...logs import logger_for
from ...runtime.execution import connect_and_run
from ..model.tenant import Tenant
from ..records.record import Row, read_rows
from ..records.repair import watching
from ..records.report import MIGRATED_ELSEWHERE, Outcome
from ..selection.discovery import known_tenants
from .compiled import CompiledPaths, execute_script
from .extensions import Extensions
from .interface import recorded
from .run import Run
from .tenant_free import TENANT_SCHEMA_KEY

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
    """Reflection (autogenerate) defaults to the tenant's schema meanwhile,
    and autogenerate's plugins are kept from naming it (:mod:`.tenant_free`)."""
    dialect = conn.dialect
    previous = dialect.default_schema_name
    dialect.default_schema_name = schema
    info = conn.info
    info[TENANT_SCHEMA_KEY] = (schema, previous)
    try:
        yield
    finally:
        dialect.default_schema_name = previous
        info.pop(TENANT_SCHEMA_KEY, None)


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
    info = conn.info  # (read from an invalidated connection, it raises)
    info[SCHEMAS_KEY] = list(path or [schema])  # who blocks, on a timeout
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
        info.pop(SCHEMAS_KEY, None)


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
        elif not c.info.get(TAKES_LOCAL_SETTINGS) or c.info.get(OWN_READ):
            _search_path(c, value)
        # else the timeouts' statement sets it (LOCAL_SETTINGS): one round trip

    settings = conn.info.setdefault(LOCAL_SETTINGS, {})
    settings["search_path"] = value
    event.listen(conn, "begin", on_begin)
    try:
        yield
    finally:
        event.remove(conn, "begin", on_begin)
        settings.pop("search_path", None)
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

    def __init__(self, run: Run, migrate: Callable[[Connection, Tenant], None]) -> None:
        self.run = run
        self.migrate = migrate
        self._conn: Connection | None = None
        self._dialect: Dialect | None = None
        self.caller_txn = False
        self.existing: set[str] = set()
        self.with_table: set[str] = set()
        self.versions: dict[str, list[str]] = {}
        settings = run.settings
        # an upgrade to the one head: replay once-rendered scripts where allowed
        self.compiled = (
            CompiledPaths(
                run.script, run.targets[0], settings.compiled, config=run.config
            )
            if settings.compiled != "never"
            and not run.shared
            and run.command == "upgrade"
            and run.skip_at_head
            and len(run.targets) == 1
            else None
        )
        self._record_schema: str | None = None
        self.extensions = Extensions(settings.extensions)
        run.journal.bind(settings.server, self.on_record)

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

        settings = self.run.settings
        return connect_and_run(settings, bound, lock=False, section=settings.section)

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "only inside on_connection()"
        return self._conn

    def select(self) -> list[str]:
        """The tenants of this run, and what one batched read knows of them."""
        self.caller_txn = self.conn.in_transaction()  # before we touch it: whose?
        with own_read(self.conn):
            names = self.run.select(self.conn, partial(recorded, self))
        self.take(names)
        return names

    def known(self) -> list[str]:
        """The known tenants of this database."""
        with own_read(self.conn):
            return known_tenants(self.run.settings, self.conn)

    @property
    def record_schema(self) -> str | None:
        """The run record's schema: the shared scope's, else the connection's
        default one (``public``) -- named in every statement, so that it is
        never a tenant's, whatever the search_path."""
        if self._record_schema is None:
            shared = self.run.settings.shared
            self._record_schema = shared or self.conn.dialect.default_schema_name
        return self._record_schema

    def record_rows(self) -> list[Row] | None:
        """The rows of this database's run record; None: no run recorded."""
        return self.read_record(read_rows)

    def read_record(self, fn: Callable[[Connection, str | None], T]) -> T | None:
        """``fn(connection, schema)`` reading the run record's database."""
        with own_read(self.conn):
            return fn(self.conn, self.record_schema)

    def versions_of(self, names: list[str]) -> dict[str, list[str] | None]:
        """The versions of *names* (None: no such schema), one batched read."""
        existing, _, found = _schema_state(self.conn, names)
        return {n: found.get(n, []) if n in existing else None for n in names}

    def on_record(self, fn: Callable[[Connection, str | None], T]) -> T:
        """``fn(connection, schema)`` on the run record's database: this
        strategy's connection (outside any tenant's transaction), or a new
        one (a parallel run's parent)."""
        if self._conn is not None:
            return fn(self._conn, self.record_schema)
        return self.on_connection(lambda: fn(self.conn, self.record_schema))

    def verify(self, name: str) -> tuple[list[str] | None, list[str] | None]:
        """Tenant *name*'s versions when its run started (the last read
        before it) and now, read on a connection of their own (after a stop,
        whatever state this strategy's connection is in); None: its schema
        did not (does not) exist."""
        before = self.versions.get(name, []) if name in self.existing else None
        return before, self._read_now(name)

    def _read_now(self, name: str) -> list[str] | None:

        def read(conn: Connection) -> list[str] | None:
            existing, _, found = _schema_state(conn, [name])
            return found.get(name, []) if name in existing else None

        config, settings = self.run.config, self.run.settings
        shared = config.attributes.get("connection")
        if shared is not None:
            return run_with_connection(shared, read)
        section = settings.section or config.config_ini_section
        engine = engine_from_options(config.get_section(section, {}))
        where = f"the database {display_url(engine.url)}"
        try:
            return run_with_connection(engine, read, owned=True, where=where)
        finally:
            if not engine.dialect.is_async:
                engine.dispose()

    def take(self, names: Sequence[str]) -> None:
        """One batched read of *names*' schemas and versions."""
        conn = self.conn
        self._dialect = conn.dialect
        self.record_schema  # noqa: B018 - resolved now, outside any tenant
        if not self.run.is_fleet:  # one named tenant: Alembic's run, as stock
            self.compiled = None
        self.existing, self.with_table, self.versions = _schema_state(conn, names)
        with own_read(conn):
            missing = [n for n in names if n not in self.existing]
            self.run.selection.load_listed(conn, missing)

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

    def at_head(self, name: str) -> bool | None:
        """At head according to the batched read (nothing to lock for)."""
        return name in self.existing and self.run.at_head(self.versions.get(name, []))

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name*; what it did.

        One transaction: its search_path and timeouts, the tenant's lock
        (transaction-level; kept past a commit ``autocommit_block()`` makes),
        a fresh read of its version, its schema when missing, then the
        replayed script or Alembic's run, its row of the run record, one
        commit.  A replayed script that fails rolls the tenant back and is
        its failure (run once: a lock timeout waits once).
        """
        if self.at_head(name):
            return None
        run = self.run
        if run.prints_current:  # status: the batched read has it all
            versions = self.current(name) or []
            if name in self.existing:
                run.print_current(versions)
            return versions, versions
        conn, settings = self.conn, run.settings
        tenant = settings.tenant(name)
        scope = schema_scope(conn, name, path=tenant.search_path)
        # autogenerate compares with a tenant that does not exist yet inside
        # a transaction rolled back: its schema (and the version table Alembic
        # makes) are not left behind
        compares_only = run.autogenerates and name not in self.existing
        around = rolled_back(conn) if compares_only else tenant_transaction(conn)
        with around, scope, run.lock(conn, schema=name):
            outcome, recorded = self._migrate(conn, tenant)
            if not recorded:  # its row, in the same transaction as its version
                run.journal.done(name, outcome, on=(conn, self.record_schema))
        if not compares_only:
            self.existing.add(name)
        return outcome

    def _migrate(self, conn: Connection, tenant: Tenant) -> tuple[Outcome, bool]:
        """Inside the tenant's transaction, under its lock: what it does, and
        whether its row of the run record went with its replayed script."""
        run, settings, name = self.run, self.run.settings, tenant.name
        if settings.locks():  # trust only what we read under the lock
            self._refresh(conn, name)
        before = self.versions.get(name, [])
        missing = name not in self.existing
        run.journal.check_repair(name, partial(run.applied, versions=before))
        if not missing and run.at_head(before):
            return MIGRATED_ELSEWHERE, False
        if missing and not run.autogenerates and not run.selection.may_create(name):
            if run.command == "current":
                return (before, before), False
            raise run.selection.missing(name)
        if missing:
            conn.execute(CreateSchema(name, if_not_exists=True))
        # a stop: no statement of it starts after; a failure after part of
        # it committed (autocommit_block()) needs repair
        with (
            watching(conn, name),
            guarded(conn),
            self.extensions.shared(conn),
        ):
            if self.compiled is not None:
                outcome: Outcome = (before, [run.targets[0]])
                schema = self.record_schema
                row = run.journal.done_sql(name, outcome, conn.dialect, schema)
                replayed = self._replay(conn, tenant, before, row or "")
                if replayed is not None:
                    return outcome, replayed and row is not None
            if tenant.shared_schema and run.autogenerates:
                shared = _shared_only(conn, tenant.shared_schema, name)
                tenant = replace(tenant, shared_tables=shared)
            self.migrate(conn, tenant)
        return (before, list(context.get_context().get_current_heads())), False

    def _refresh(self, conn: Connection, name: str) -> None:
        """Read tenant *name*'s versions again (under its lock): only them
        when the batched read found its version table -- a tenant's version
        table is not dropped while migrations run -- else its whole state."""
        quote = conn.dialect.identifier_preparer.quote
        table = f"{quote(name)}.{quote(VERSION_TABLE)}"
        if name in self.existing and name not in self.with_table:
            # a schema without its version table: is it still without? (one
            # lookup, not the whole state -- the common case of a new tenant)
            found = conn.scalar(select(func.to_regclass(table)))
            if found is None:
                self.versions[name] = []
                return
        if name in self.existing:
            rows = conn.exec_driver_sql(f"SELECT version_num FROM {table}")
            self.versions[name] = [str(version) for (version,) in rows]
            self.with_table.add(name)
            return
        state = _schema_state(conn, [name])
        _refresh(name, state, self.existing, self.with_table, self.versions)

    def _replay(
        self, conn: Connection, tenant: Tenant, before: list[str], tail: str
    ) -> bool | None:
        """Take *tenant* to the destination in its transaction, segment by
        segment (:class:`~.compiled.Segment`): the replayed scripts, and
        Alembic's run of the revisions that are not replayed; None when
        nothing of the path is replayed (the caller runs Alembic).  *tail*
        (its row of the run record) ends the last script when the path ends
        with one: True then.  A script's failure is the tenant's, raised as
        the driver raised it, with a note naming the replayed revisions; its
        SQL is shortened."""
        assert self.compiled is not None
        has_table = tenant.name in self.with_table
        segments = self.compiled.segments_for(
            conn.dialect, before, tenant.name, has_table
        )
        if segments is None:
            return None
        for number, segment in enumerate(segments, 1):
            if segment.sql is None:
                with steps_until(segment.stop):
                    self.migrate(conn, tenant)
                continue
            last = number == len(segments)
            script = segment.sql + tail if last else segment.sql
            # (asyncpg's scripts bypass the connection's events)
            script = self.extensions.rewritten(script, conn)
            try:
                execute_script(conn, script)
            except Exception as exc:
                if requested() is None and connection_lost(exc) is None:
                    segment.explain(exc)
                raise
        return segments[-1].sql is not None
