"""Running env.py's migrate function on every selected database at once,
all-or-nothing (two-phase where asked)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.base import Transaction, TwoPhaseTransaction

from ..alembic_internals import alembic_may_end
from ..configuration.options import InvalidOptionType
from ..configuration.settings import (
    WRITING_COMMANDS,
)
from ..database.connections import own_read, run_with_connections
from ..database.engines import (
    ACCEPTED_CONNECTABLES,
    engine_from_options,
    is_connectable,
)
from ..database.locks import migration_lock
from ..database.retries import why_not_retry, with_lock_retries
from ..database.timeouts import migration_safeguards
from ..logs import logger_for
from ..runtime.execution import enter_schema
from ..runtime.output import labelled_stdout
from .databases import NON_TRANSACTIONAL_DDL, Database, DatabaseSettings

__all__ = ["run_databases"]

log = logger_for(__package__ or __name__)  # the feature's logger


def _shared(settings: DatabaseSettings) -> dict[str, Any]:
    attributes = settings.config.attributes
    one = attributes.get("connection")
    if one is not None and not attributes.get("connections"):
        # one connection (a test tool's): for the one database selected
        if len(settings.databases) != 1:
            names = ", ".join(db.name for db in settings.databases)
            raise CommandError(
                "config.attributes['connection'] is one database, but this command"
                f" runs on {names}: select one with -x db=NAME (or"
                " config.attributes['db']), or share config.attributes['connections']"
                " = {name: connection}"
            )
        return {settings.databases[0].name: one}
    shared = attributes.get("connections") or {}
    if not isinstance(shared, dict):
        raise InvalidOptionType(
            "config.attributes['connections'] must be a dict of database name to"
            f" {ACCEPTED_CONNECTABLES}, got {type(shared).__name__}"
        )
    for name, connectable in shared.items():
        _check_shared(settings, name, connectable)
    selected = {db.name for db in settings.databases}
    return {name: c for name, c in shared.items() if name in selected}


def _check_shared(settings: DatabaseSettings, name: str, connectable: object) -> None:
    """``config.attributes['connections'][name]``: a configured database's
    connectable."""
    if name not in settings.names:
        raise CommandError(
            f"unknown database {name!r} in config.attributes['connections']:"
            f" configured databases are {', '.join(settings.names)}"
        )
    if not is_connectable(connectable):
        raise InvalidOptionType(
            f"config.attributes['connections'][{name!r}] must be"
            f" {ACCEPTED_CONNECTABLES}, got {type(connectable).__name__}:"
            f" {connectable!r}"
        )


def _check_two_phase(
    connections: dict[str, Connection], databases: list[Database]
) -> None:
    """Fail before any change when a transactional database cannot prepare."""
    for database in databases:
        backend = connections[database.name].dialect.name
        if backend != "postgresql" and backend not in NON_TRANSACTIONAL_DDL:
            raise CommandError(
                f"two_phase = true: database {database.name!r} ({backend}) does not"
                " support two-phase commit; PostgreSQL (max_prepared_transactions > 0)"
                " does, or set two_phase = false"
            )
    for database in databases:
        conn = connections[database.name]
        if conn.dialect.name != "postgresql":
            continue  # MySQL/MariaDB: migrated after the others are prepared
        with own_read(conn):
            setting = conn.exec_driver_sql("SHOW max_prepared_transactions").scalar()
        if str(setting) == "0":
            raise CommandError(
                f"two_phase = true: PostgreSQL database {database.name!r} has"
                " max_prepared_transactions = 0, so it cannot prepare transactions;"
                " raise it in postgresql.conf (and restart), or set two_phase = false"
            )


class _AllOrNothing:
    """The transactions of one run over several databases: begun per group,
    committed together, or every one rolled back (prepared ones included)."""

    def __init__(
        self, connections: dict[str, Connection], settings: DatabaseSettings
    ) -> None:
        self.connections = connections
        self.settings = settings
        self.databases = list(settings.databases)
        two_phase = settings.two_phase
        self.late = [
            db
            for db in self.databases
            if two_phase and db.backend in NON_TRANSACTIONAL_DDL
        ]
        self.early = [db for db in self.databases if db not in self.late]
        self.transactions: list[Transaction] = []
        self.plain: dict[Connection, Transaction] = {}
        """Our own (not two-phase, not nested) transactions, which a revision's
        ``autocommit_block()`` may end and replace, as in stock Alembic."""

    def begin(self, group: list[Database]) -> None:
        for database in group:
            conn = self.connections[database.name]
            if conn.in_transaction():  # the caller's: a savepoint inside it
                self.transactions.append(conn.begin_nested())
            elif self.settings.two_phase and database not in self.late:
                self.transactions.append(conn.begin_twophase())
            else:
                self.plain[conn] = conn.begin()
                self.transactions.append(self.plain[conn])

    def _current(self, transaction: Transaction) -> Transaction | None:
        """*transaction*, or the one Alembic began after ending it."""
        conn = transaction.connection
        if self.plain.get(conn) is transaction and not transaction.is_active:
            return conn.get_transaction()
        return transaction

    def run(
        self, group: list[Database], migrate: Callable[[Connection, Database], None]
    ) -> None:
        several = len(self.settings.names) > 1  # also with -x db=one of them
        for database in group:
            conn = self.connections[database.name]
            log.info("Database %s (%s)", database.name, conn.dialect.name)
            label = f"{database.name}: " if several else None
            with (
                labelled_stdout(self.settings.config, label),
                alembic_may_end(self.plain),
            ):
                migrate(conn, database)

    def prepare(self) -> None:
        for transaction in self.transactions:
            if isinstance(transaction, TwoPhaseTransaction):
                transaction.prepare()

    def commit(self) -> None:
        for transaction in reversed(self.transactions):  # the late ones first
            current = self._current(transaction)
            if current is not None:
                current.commit()

    def roll_back(self) -> None:
        for each in reversed(self.transactions):
            transaction = self._current(each)
            if transaction is None or not transaction.is_active:
                continue
            try:  # a prepared two-phase transaction is rolled back too
                transaction.rollback()
            except Exception as rollback_error:  # keep rolling back the others
                log.error("rollback failed: %s", rollback_error)
        names = ", ".join(db.name for db in self.databases)
        log.error("Rolled back every database (%s)", names)


def _all_or_nothing(
    connections: dict[str, Connection],
    settings: DatabaseSettings,
    migrate: Callable[[Connection, Database], None],
) -> None:
    """Begin on every database, migrate each, then commit all or roll back all.

    With *two_phase*, the transactional databases are migrated and PREPAREd
    first; MySQL/MariaDB (whose DDL commits implicitly, and which refuse DDL
    inside an XA transaction) are migrated after that, in plain transactions,
    and the prepared ones are committed only once they succeeded.
    """
    if settings.two_phase:
        _check_two_phase(connections, list(settings.databases))
    run = _AllOrNothing(connections, settings)
    try:
        run.begin(run.early)
        run.run(run.early, migrate)
        run.prepare()
        run.begin(run.late)
        run.run(run.late, migrate)
        run.commit()
    except BaseException:
        run.roll_back()
        raise
    if settings.command in WRITING_COMMANDS:
        databases = run.databases
        log.info(
            "Committed %d database%s: %s",
            len(databases),
            "" if len(databases) == 1 else "s",
            ", ".join(d.name for d in databases),
        )


def run_databases(
    settings: DatabaseSettings | Config,
    migrate: Callable[[Connection, Database], None],
) -> None:
    """What a multidb-mixed env.py's ``run_migrations_online()`` calls.

    Calls ``migrate(connection, database)`` for every selected database, each
    inside its own transaction, and commits them together at the end.
    ``config.attributes["connections"]`` may share a Connection, Engine,
    AsyncEngine or AsyncConnection per database name.
    """
    settings = DatabaseSettings.of(settings)
    databases = list(settings.databases)
    shared = _shared(settings)
    # named as errors name them: the caller's object, or the configured database
    names = {
        db.name: (
            f"config.attributes['connections'][{db.name!r}]"
            if db.name in shared
            else db.where
        )
        for db in databases
    }
    owned = {
        db.name: engine_from_options(db.options, where=f"[{db.section}]")
        for db in databases
        if db.name not in shared
    }
    connectables = {names[name]: c for name, c in {**owned, **shared}.items()}

    def run_all(connections: dict[str, Connection]) -> None:
        views = {db.name: connections[names[db.name]] for db in databases}
        with ExitStack() as held:
            if settings.locks():  # every database, in the same order everywhere
                for db in databases:
                    timeout = settings.migration_lock_timeout
                    held.enter_context(
                        migration_lock(
                            views[db.name], schema=db.schema, timeout=timeout
                        )
                    )
            for db in databases:
                if db.schema is not None:
                    held.enter_context(enter_schema(views[db.name], db.schema))
                held.enter_context(
                    migration_safeguards(views[db.name], settings.timeouts)
                )
            why_not = next(
                (f"{n}: {w}" for n, c in views.items() if (w := why_not_retry(c))), ""
            )
            with_lock_retries(
                lambda: _all_or_nothing(views, settings, migrate),
                settings.lock_retries,
                "the databases " + ", ".join(db.name for db in databases),
                why_not=why_not,
            )

    try:
        run_with_connections(
            connectables, run_all, owned={names[name] for name in owned}
        )
    finally:
        for engine in owned.values():
            if isinstance(engine, Engine):
                engine.dispose()
