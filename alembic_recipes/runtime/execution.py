"""Run env.py's migrate function on the environment's connection, under its lock.

The layer between the settings env.py loaded (:mod:`.settings`) and the
connection bridge (:mod:`.connections`): which connectable serves the run --
one a programmatic caller shared through ``config.attributes``, or a new
engine from the ini's ``sqlalchemy.*`` options -- whether the command holds
the database's migration lock (:mod:`.locks`) meanwhile, the lock and
statement timeouts of its transactions (:mod:`.timeouts`), and running again
after a lock timeout (:mod:`.retries`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TypeVar

from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..configuration.options import InvalidOptionType
from ..configuration.settings import Settings
from ..database.connections import run_with_connection
from ..database.engines import (
    ACCEPTED_CONNECTABLES,
    display_url,
    engine_from_options,
    is_async_engine,
    is_connectable,
)
from ..database.errors import connection_lost
from ..database.locks import migration_lock
from ..database.poolers import one_transaction, pooled
from ..database.retries import why_not_retry, with_lock_retries
from ..database.timeouts import migration_safeguards

__all__ = ["connect_and_run"]

T = TypeVar("T")


def connect_and_run(
    settings: Settings | Config,
    fn: Callable[[Connection], T],
    *,
    section: str | None = None,
    attribute: str = "connection",
    lock: bool = True,
) -> T:
    """What a generated env.py's ``run_migrations_online()`` calls.

    Uses ``config.attributes[attribute]`` when a programmatic caller shared a
    connection or engine, otherwise a new engine from ``sqlalchemy.*`` options
    of the ini *section* (default: the main section), sync or async by URL.
    *settings*: what env.py loaded (or the ``Config``).  Writing commands hold
    the database's migration lock meanwhile (see :mod:`.locks`) unless *lock*
    is false or ``migration_lock = false``; its transactions have the
    configured timeouts, and with *lock*, a lock timeout runs *fn* again
    (``lock_retries``).
    """
    settings = Settings.of(settings)
    config = settings.config
    locked = _guarded(fn, settings, lock=lock)
    shared = config.attributes.get(attribute)
    if shared is not None:
        if not is_connectable(shared):
            raise InvalidOptionType(
                f"config.attributes[{attribute!r}] must be {ACCEPTED_CONNECTABLES},"
                f" got {type(shared).__name__}: {shared!r}"
            )
        return run_with_connection(
            shared, locked, where=f"config.attributes[{attribute!r}]"
        )
    name = section or config.config_ini_section
    engine = engine_from_options(config.get_section(name, {}), where=f"[{name}]")
    where = f"the database {display_url(engine.url)}"
    if is_async_engine(engine):
        return run_with_connection(engine, locked, owned=True, where=where)
    try:
        return run_with_connection(engine, locked, where=where)
    finally:
        engine.dispose()


def _guarded(
    fn: Callable[[Connection], T], settings: Settings, *, lock: bool
) -> Callable[[Connection], T]:
    """*fn* with the configured timeouts, and with *lock*: holding the
    database's migration lock when the command writes, running again after
    a lock timeout where that is safe.  Behind a connection pooler
    (:mod:`.poolers`) each attempt is one transaction, its lock and
    search_path the transaction's own (a fleet, *lock* false, does the same
    per tenant)."""
    locks = lock and settings.locks()

    def enter(connection: Connection, stack: ExitStack) -> None:
        if locks:
            timeout = settings.migration_lock_timeout
            schema = settings.target_schema
            stack.enter_context(
                migration_lock(connection, schema=schema, timeout=timeout)
            )
        if settings.target_schema is not None:
            stack.enter_context(enter_schema(connection, settings.target_schema))
        stack.enter_context(migration_safeguards(connection, settings.timeouts))

    def attempted(connection: Connection, attempt: Callable[[], T]) -> T:
        what = f"the database {display_url(connection.engine.url)}"
        why_not = why_not_retry(connection)
        try:
            return with_lock_retries(
                attempt, settings.lock_retries, what, why_not=why_not
            )
        except Exception as exc:
            lost = connection_lost(exc)
            if lost is None:
                raise
            raise CommandError(f"{what}: {lost}") from exc

    def in_one_transaction(connection: Connection) -> T:
        with one_transaction(connection), ExitStack() as stack:
            enter(connection, stack)
            return fn(connection)

    def guarded(connection: Connection) -> T:
        behind_pooler = pooled(connection)  # first: psycopg then prepares nothing
        if lock and not connection.in_transaction() and behind_pooler:
            return attempted(connection, lambda: in_one_transaction(connection))
        with ExitStack() as stack:
            enter(connection, stack)
            if not lock:  # the caller retries (a fleet: per tenant)
                return fn(connection)
            return attempted(connection, lambda: fn(connection))

    return guarded


@contextmanager
def enter_schema(connection: Connection, schema: str) -> Iterator[None]:
    """Migrate into PostgreSQL schema *schema* (``target_schema``): create it
    if missing and put it first on the search_path -- for the caller's open
    transaction only (``SET LOCAL``); else for the session, with its previous
    search_path set back afterwards."""
    if connection.dialect.name != "postgresql":
        raise CommandError(
            f"target_schema {schema!r} is a PostgreSQL schema; the database is"
            f" {connection.dialect.name} ({display_url(connection.engine.url)})"
        )
    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
    set_path = text("SELECT set_config('search_path', :path, :local)")
    if connection.in_transaction():
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        connection.execute(set_path, {"path": quoted, "local": True})
        yield
        return
    with connection.begin():
        before = connection.scalar(text("SELECT current_setting('search_path')"))
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        connection.execute(set_path, {"path": quoted, "local": False})
    try:
        yield
    finally:
        if not connection.invalidated and not connection.closed:
            with nullcontext() if connection.in_transaction() else connection.begin():
                connection.execute(set_path, {"path": before, "local": False})
