"""A tenant's schema selected for a transaction (schema strategy).

:func:`schema_scope` puts the tenant's schema alone on the ``search_path``
(``set_config(..., true)``: a bound parameter, undone when the transaction
ends), in a transaction of its own or a SAVEPOINT in the caller's, and has
reflection default to it meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import (
    event,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from ...alembic_internals import (
    transaction_alembic_may_end,
)
from ...database.blocking import SCHEMAS_KEY
from ...database.connections import (
    OWN_READ,
    own_read,
)
from ...database.timeouts import LOCAL_SETTINGS, TAKES_LOCAL_SETTINGS
from .tenant_free import TENANT_SCHEMA_KEY

__all__ = ["schema_scope"]


@contextmanager
def default_schema(conn: Connection, schema: str) -> Iterator[None]:
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
                with default_schema(conn, schema):
                    yield
            return
        with _on_every_transaction(conn, value), transaction_alembic_may_end(conn):
            if create:
                conn.execute(CreateSchema(schema, if_not_exists=True))
            with default_schema(conn, schema):
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
