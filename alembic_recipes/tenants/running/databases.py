"""The ``database`` strategy: one database (or SQLite file) per tenant.

``sqlalchemy.url`` is a template with ``{tenant}`` in its database part.  A
missing database is created when the tenant may be (see ``create_tenants``);
when that tenant's migration then fails, the database or file created for it
is removed again, so a later run does not take it for an existing tenant.

Creating is safe beside other runs and after interruptions:

* a database is created and first migrated under a creation lock (on the
  server's maintenance database; for a SQLite file, a lock file in the
  temporary directory), so runs
  that find the same tenant missing take turns: the first creates and
  migrates it, the others wait, then find it at head;
* until its first migration has committed, a created database holds the
  table ``alembic_recipes_creating``.  A run that finds a database with no
  version takes the creation lock before it reads that mark (so never while
  its creator lives, nor during its creator's DDL); when the mark is there --
  its creator was killed or its host went down -- it removes the database and
  creates it again where creating is allowed; it never migrates it as an
  existing tenant.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine, make_url

from ...alembic_internals import transaction_alembic_may_end
from ...database.connections import own_read, run_with_connection
from ...database.engines import display_url, engine_from_options, is_async_engine
from ...database.locks import creation_lock
from ...database.poolers import tenant_transaction
from ...database.stopping import guarded
from ...database.timeouts import migration_safeguards
from ...logs import logger_for
from ..model.names import exists as already
from ..model.tenant import Tenant
from ..records.outcomes import Outcome
from ..records.record import Row, read_rows, record_location
from ..records.repair import commits_ddl, watching
from ..selection.discovery import (
    admin_engine,
    known_tenants,
    server_databases,
    server_of,
)
from .interface import recorded
from .run import Run
from .snapshots import snapshot_usable
from .tenant_database import (
    Created,
    Unsettled,
    database_exists,
    marked,
    unmark,
    versions_in,
)

__all__ = ["DatabaseTenants"]

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
log = logger_for(__name__)


class DatabaseTenants:
    """The database strategy's tenants (a :class:`~.strategy.TenantStrategy`):
    each on a connection of its own."""

    def __init__(self, run: Run, migrate: Callable[[Connection, Tenant], None]) -> None:
        self.run = run
        self.migrate = migrate
        config = run.config
        self.shared = config.attributes.get("connection")
        # a server's own section (``servers``), else [alembic]
        self.section = run.settings.section or config.config_ini_section
        self.options = run.settings.section_options()
        self._before: dict[str, list[str]] = {}
        self._record_engine: tuple[int, Engine | AsyncEngine] | None = None
        run.journal.bind(run.settings.server, self.on_record)

    def on_connection(self, fn: Callable[[], T]) -> T:
        """Call *fn*: the tenants share no connection (each opens its own);
        the run record's, opened when first written, is closed after.  One
        of several ``servers`` is asked first whether it answers."""
        url = make_url(self.run.settings.tenant("placeholder").url)
        if self.run.settings.server is not None and url.get_backend_name() not in (
            "sqlite",
        ):
            server_databases(url.render_as_string(hide_password=False))
        try:
            return fn()
        finally:
            self._close_record()

    def select(self) -> list[str]:
        """The tenants of this run."""
        names = self.run.select(None, partial(recorded, self))
        self.take(names)
        return names

    def known(self) -> list[str]:
        """The known tenants of this server (or SQLite directory)."""
        return known_tenants(self.run.settings, None)

    def record_rows(self) -> list[Row] | None:
        """The rows of the run record; None: no run recorded."""
        return self._on_record(read_rows)

    def read_record(self, fn: Callable[[Connection, str | None], T]) -> T | None:
        """``fn(connection, schema)`` reading the run record's database (None:
        there is none yet)."""
        return self._on_record(fn)

    def versions_of(self, names: list[str]) -> dict[str, list[str] | None]:
        """The versions of *names*, each read from its database (None: no
        such database)."""
        return {name: self._read_now(name) for name in names}

    def verify(self, name: str) -> tuple[list[str] | None, list[str] | None]:
        """Tenant *name*'s versions when its run started (as read under its
        lock, when in this process) and now, read from its database on a
        connection of their own (None: no database)."""
        return self._before.get(name), self._read_now(name)

    def _read_now(self, name: str) -> list[str] | None:
        tenant = self.run.settings.tenant(name)
        if self.shared is None and not database_exists(tenant.url):
            return None

        def read(conn: Connection) -> list[str]:
            with own_read(conn):
                return versions_in(conn)

        if self.shared is not None:
            return run_with_connection(self.shared, read)
        return self._on_tenant(tenant, read)

    def take(self, names: Sequence[str]) -> None:
        """Nothing is read ahead: each tenant's own connection reads it."""
        if self.shared is not None and len(names) != 1:
            raise CommandError(
                "config.attributes['connection'] is one database: with"
                f" tenant_strategy = database give one tenant (got {len(names)})"
            )

    def at_head(self, name: str) -> bool | None:
        """Nothing is known before the tenant's own connection reads it."""
        return None

    def _on_record(
        self, fn: Callable[[Connection, str | None], T], *, write: bool = False
    ) -> T | None:
        """``fn(connection, schema)`` on the run record's database (None:
        there is none, see :func:`~.record.record_location`; or, to read, a
        SQLite record file no fleet run has written yet -- not created by
        reading)."""
        url, schema = record_location(self.run.settings)
        if (
            not write
            and url is not None
            and make_url(url).get_backend_name() == "sqlite"
            and not database_exists(url)
        ):
            return None
        if url is None:
            if self.run.command == "current":
                return None  # status: nothing to say about a record never kept
            log.info(
                "No run record kept: with tenant_strategy = database on a server,"
                " set tenants_url or shared_scope for a database to keep it in"
            )
            return None
        if write and make_url(url).get_backend_name() == "sqlite":
            # beside the tenants' files, whose directory the first run makes
            Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = self._record_engine_for(url)

        def run(conn: Connection) -> T:
            if write:
                return fn(conn, schema)
            with own_read(conn):
                return fn(conn, schema)

        where = f"the run record's database ({display_url(url)})"
        return run_with_connection(engine, run, owned=True, where=where)

    def on_record(self, fn: Callable[[Connection, str | None], T]) -> T | None:
        """``fn(connection, schema)`` on the run record's database (None:
        none is kept); its connection is kept for the run's later writes."""
        return self._on_record(fn, write=True)

    def _record_engine_for(self, url: str) -> Engine | AsyncEngine:
        """The record's engine of this process: one connection kept (a sync
        driver), made again in a forked worker."""
        pid = os.getpid()
        if self._record_engine is None or self._record_engine[0] != pid:
            options = {**self.options, "sqlalchemy.url": url}
            self._record_engine = (pid, engine_from_options(options, keep_one=True))
        return self._record_engine[1]

    def _close_record(self) -> None:
        if self._record_engine is not None and self._record_engine[0] == os.getpid():
            engine = self._record_engine[1]
            if not is_async_engine(engine):
                engine.dispose()
        self._record_engine = None

    def current(self, name: str) -> list[str] | None:
        """Tenant *name*'s versions, read from its database; None when the
        database does not exist."""
        tenant = self.run.settings.tenant(name)

        def read(conn: Connection) -> list[str]:
            with own_read(conn):
                return versions_in(conn)

        if self.shared is not None:
            return run_with_connection(self.shared, read)
        if not database_exists(tenant.url):
            if self.run.command != "current":  # a plan: would it be created?
                self._load_listed(name)
            return None
        return self._on_tenant(tenant, read)

    def prepare_workers(self, names: Sequence[str]) -> None:
        """Read which tenants are listed now, once, for every worker."""
        self.run.selection.load_listed(None, names)

    def _migrate_on(
        self,
        conn: Connection,
        tenant: Tenant,
        created: Created | None = None,
        settled: bool = False,
    ) -> Outcome:
        """Migrate *tenant* on *conn*; *created*: this run made its database
        (under the creation lock); *settled*: a database without versions is
        known to be an existing tenant's (the creation lock has been taken,
        or the caller gave the connection)."""
        run = self.run
        with contextlib.ExitStack() as stack:
            stack.enter_context(tenant_transaction(conn))  # behind a pooler
            # the caller's transaction or, behind a pooler, ours: a savepoint
            caller_txn = conn.in_transaction()
            stack.enter_context(run.lock(conn))  # then read: versions to trust
            stack.enter_context(migration_safeguards(conn, run.settings.timeouts))
            with own_read(conn):
                before = versions_in(conn)
            self._before[tenant.name] = before
            applied = partial(run.applied, versions=before)
            run.journal.check_repair(tenant.name, applied)
            if run.at_head(before):
                if created is None:
                    return None
                unmark(conn)  # a copy of the template at head
                return [], before
            new = not before and run.command in ("upgrade", "stamp")
            if new and created is None and not settled:
                raise Unsettled
            with (
                conn.begin_nested() if caller_txn else transaction_alembic_may_end(conn)
            ):
                with watching(conn, tenant.name, self._running(conn, tenant)):
                    with guarded(conn):  # a stop: no statement starts after
                        self.migrate(conn, tenant)
                after = list(context.get_context().get_current_heads())
            if created is not None:  # the first migration has committed
                unmark(conn)
        return before, after

    def _running(
        self, conn: Connection, tenant: Tenant
    ) -> Callable[[str], None] | None:
        """Where DDL commits as it runs, each revision's start goes into the
        run record first (:mod:`.repair`)."""
        if not commits_ddl(conn):
            return None
        return partial(self.run.journal.running, tenant.name)

    def _on_tenant(self, tenant: Tenant, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` on a connection of the tenant's own database."""
        engine = engine_from_options(
            {**self.options, "sqlalchemy.url": tenant.url}, where=f"[{self.section}]"
        )
        where = f"tenant {tenant.name!r}'s database ({tenant.display_url})"
        return run_with_connection(engine, fn, owned=True, where=where)

    def _run(
        self, tenant: Tenant, created: Created | None = None, settled: bool = False
    ) -> Outcome:
        return self._on_tenant(
            tenant, lambda c: self._migrate_on(c, tenant, created, settled)
        )

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name* (creating its database when it may be);
        its row of the run record is written right after its commit."""
        outcome = self._one(name)
        self.run.journal.done(name, outcome)
        return outcome

    def _one(self, name: str) -> Outcome:
        run = self.run
        tenant = run.settings.tenant(name)
        if self.shared is not None:
            return run_with_connection(
                self.shared, lambda c: self._migrate_on(c, tenant, settled=True)
            )
        if database_exists(tenant.url):
            if run.settings.provisioning.new:
                raise already(name, "database")
            try:
                return self._run(tenant)
            except Unsettled:
                pass  # no version yet: see below, under the creation lock
        else:
            if run.command == "current":
                return [], []
            self._load_listed(name)
            if not run.selection.may_create(name):
                raise run.selection.missing(name)
        return self._create_and_run(name, tenant)

    def _load_listed(self, name: str) -> None:
        self.run.selection.load_listed(None, [name])  # once, until forgotten

    def _create_and_run(self, name: str, tenant: Tenant) -> Outcome:
        """Under the creation lock: create tenant *name*'s database (removing
        one an interrupted run left unfinished) when it may be, and migrate it."""
        url = make_url(tenant.url)
        timeout = self.run.settings.migration_lock_timeout
        if url.get_backend_name() == "sqlite":
            locked = creation_lock(None, url.database or "", timeout=timeout)
            return self._under_lock(name, tenant, locked, None)
        engine = admin_engine(tenant.url)
        where = f"the server {display_url(server_of(url))}"

        def create(admin: Connection) -> Outcome:
            locked = creation_lock(admin, url.database or "", timeout=timeout)
            return self._under_lock(name, tenant, locked, admin)

        return run_with_connection(engine, create, owned=True, where=where)

    def _under_lock(
        self,
        name: str,
        tenant: Tenant,
        locked: contextlib.AbstractContextManager[None],
        admin: Connection | None,
    ) -> Outcome:
        run = self.run
        with locked:
            exists = database_exists(tenant.url)
            if exists and self._left_unfinished(tenant):
                log.warning(
                    "tenant %r: its database was created by a run that did not finish"
                    " its first migration (interrupted); removed",
                    name,
                )
                Created(tenant.url).remove()
                exists = False
            if exists and run.settings.provisioning.new:
                raise already(name, "database")
            created = None
            if not exists:
                self._load_listed(name)
                if not run.selection.may_create(name):
                    raise run.selection.missing(name)
                created = Created(tenant.url, admin, self._template_for(name))
                created.create(self.options, run.settings.provisioning.seed)
            try:
                return self._run(tenant, created, settled=True)
            except BaseException:
                if created is not None:
                    created.remove()
                raise

    def _template_for(self, name: str) -> str | None:
        """The URL of the template tenant's database that new tenant *name*
        is copied from (``provision = snapshot``); None: replay the history
        (no snapshot asked, the template itself, or a target before the
        template's versions)."""
        run = self.run
        provisioning = run.settings.provisioning
        if not provisioning.snapshot or name == provisioning.template:
            return None
        if run.command != "upgrade":
            return None
        template = run.settings.tenant(provisioning.template)
        heads = (
            self._on_tenant(template, versions_in)
            if database_exists(template.url)
            else []
        )
        if not snapshot_usable(run, provisioning.template, heads, name):
            return None
        log.info(
            "tenant %r: copied from the template %r at %s",
            name,
            provisioning.template,
            ", ".join(heads),
        )
        return template.url

    def _left_unfinished(self, tenant: Tenant) -> bool:
        """The tenant's database holds the creating mark and no version."""

        def read(conn: Connection) -> bool:
            with own_read(conn):
                return not versions_in(conn) and marked(conn)

        return self._on_tenant(tenant, read)
