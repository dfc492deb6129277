"""The ``schema`` strategy: one PostgreSQL database, one schema per tenant.

Per tenant, in its own transaction, the tenant's schema is the only one on
the ``search_path`` (``set_config(..., true)``: a bound parameter, undone when
the transaction ends, nothing formatted into SQL), and env.py migrates with
``version_table_schema=<tenant>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from alembic import context
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateSchema

from ...alembic_internals import (
    VERSION_TABLE,
    steps_until,
)
from ...database.connections import (
    own_read,
    rolled_back,
    run_on,
)
from ...database.errors import connection_lost
from ...database.poolers import tenant_transaction
from ...database.stopping import guarded, requested
from ...logs import logger_for
from ...runtime.execution import connect_and_run
from ..model.names import exists
from ..model.tenant import Tenant
from ..records.outcomes import MIGRATED_ELSEWHERE, Outcome
from ..records.record import Row, read_rows
from ..records.repair import watching
from ..selection.discovery import known_tenants
from .compiled import CompiledPaths, execute_script
from .extensions import Extensions
from .interface import recorded
from .run import Run
from .schema_scope import schema_scope
from .schema_state import refresh, schema_state, shared_only
from .snapshots import (
    Spares,
    after_template,
    make_tenant,
    snapshot_usable,
)

__all__ = ["SchemaTenants", "schema_scope"]

log = logger_for(__name__)
T = TypeVar("T")


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
        self.spares = (
            Spares.of(settings)
            if settings.provisioning.snapshot
            and run.command == "upgrade"
            and not run.autogenerates
            else None
        )
        self.snapshots = self.spares.snapshots if self.spares is not None else None
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
        existing, _, found = schema_state(self.conn, names)
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
            existing, _, found = schema_state(conn, [name])
            return found.get(name, []) if name in existing else None

        shared = self.run.config.attributes.get("connection")
        return run_on(shared, self.run.settings.section_options(), read)

    def take(self, names: Sequence[str]) -> None:
        """One batched read of *names*' schemas and versions."""
        conn = self.conn
        self._dialect = conn.dialect
        self.record_schema  # noqa: B018 - resolved now, outside any tenant
        if not self.run.is_fleet:  # one named tenant: Alembic's run, as stock
            self.compiled = None
        self.existing, self.with_table, self.versions = schema_state(conn, names)
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
        """At head according to the batched read (nothing to lock for; a
        tenant asked for as new is checked under its lock)."""
        if self.run.settings.provisioning.new:
            return False
        return name in self.existing and self.run.at_head(self.versions.get(name, []))

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name*; what it did.  After the template (``provision
        = snapshot``), even at head: its snapshot stored and its spares filled,
        for the applications provisioning from them."""
        outcome = self._one(name)
        if self.snapshots is not None and name == self.snapshots.template:
            after_template(self.conn, self.snapshots, self.spares)
        return outcome

    def _one(self, name: str) -> Outcome:
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
        if not missing and settings.provisioning.new:
            raise exists(name, "schema")
        if not missing and run.at_head(before):
            return MIGRATED_ELSEWHERE, False
        if missing and not self._creates(conn, name):
            return (before, before), False  # current: a missing tenant, said
        if missing and self._copies(name) and self._from_snapshot(conn, name):
            if run.at_head(self.versions[name]):
                return (before, self.versions[name]), False
            before = self.versions[name]  # the copy's: the rest runs from there
        # a stop: no statement of it starts after; a failure after part of
        # it committed (autocommit_block()) needs repair
        with (
            watching(conn, name),
            guarded(conn),
            self.extensions.shared(conn),
        ):
            if self.compiled is not None:
                found = self._replayed(conn, tenant, before)
                if found is not None:
                    return found
            if tenant.shared_schema and run.autogenerates:
                shared = shared_only(conn, tenant.shared_schema, name)
                tenant = replace(tenant, shared_tables=shared)
            self.migrate(conn, tenant)
        return (before, list(context.get_context().get_current_heads())), False

    def _creates(self, conn: Connection, name: str) -> bool:
        """Tenant *name*'s schema is missing: create it, when it may be
        (autogenerate compares with an empty one); False for ``current``;
        else the one-line error."""
        run = self.run
        if not run.autogenerates and not run.selection.may_create(name):
            if run.command == "current":
                return False
            raise run.selection.missing(name)
        if not self._copies(name):  # (a snapshot's script creates it)
            conn.execute(CreateSchema(name, if_not_exists=True))
        return True

    def _copies(self, name: str) -> bool:
        """New tenant *name* is made from the snapshot (not the template)."""
        return self.snapshots is not None and name != self.snapshots.template

    def _from_snapshot(self, conn: Connection, name: str) -> bool:
        """Make the new schema *name* a copy of the template (its versions
        then those of the snapshot); False when this command's target is not
        at or past the snapshot (an upgrade to an older revision replays)."""
        assert self.snapshots is not None
        snapshot = self.snapshots.current(conn)
        if not snapshot_usable(self.run, snapshot.template, snapshot.heads, name):
            conn.execute(CreateSchema(name, if_not_exists=True))
            return False
        # spares serve sign-ups (-x new=true); a fleet creating listed
        # tenants copies the snapshot and leaves them be
        new = self.run.settings.provisioning.new
        make_tenant(conn, name, snapshot, self.spares if new else None)
        self.versions[name] = list(snapshot.heads)
        self.with_table.add(name)
        self.existing.add(name)
        return True

    def _replayed(
        self, conn: Connection, tenant: Tenant, before: list[str]
    ) -> tuple[Outcome, bool] | None:
        """Replay the tenant's path (:mod:`.compiled`), its record row with
        it; None when Alembic runs it instead."""
        run, name = self.run, tenant.name
        outcome: Outcome = (before, [run.targets[0]])
        row = run.journal.done_sql(name, outcome, conn.dialect, self.record_schema)
        replayed = self._replay(conn, tenant, before, row or "")
        if replayed is None:
            return None
        return outcome, replayed and row is not None

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
        state = schema_state(conn, [name])
        refresh(name, state, self.existing, self.with_table, self.versions)

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
