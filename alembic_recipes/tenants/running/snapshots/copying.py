"""A new schema tenant made from the snapshot (:func:`make_tenant`): for
applications under its migration lock (:func:`copy_schema`); and whether a
command may (:func:`snapshot_usable`)."""

from __future__ import annotations

from collections.abc import Sequence

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ....database.errors import first_line
from ....database.locks import lock_key
from ....database.retries import lock_timeout_of
from ....database.stopping import Interrupted
from ....logs import logger_for
from ...model.names import exists
from ..run import Run
from ..schema_state import schema_exists
from .script import Snapshot
from .spares import Spares
from .store import Snapshots, no_template

__all__ = [
    "after_template",
    "copy_schema",
    "make_tenant",
    "snapshot_usable",
    "tenant_lock",
]

log = logger_for(__package__ or __name__)


def copy_schema(
    conn: Connection,
    name: str,
    snapshots: Snapshots,
    heads: frozenset[str],
    lock_timeout: float | None,
    spares: Spares | None = None,
) -> tuple[str, ...] | None:
    """Make the new schema tenant *name* from the snapshot when it is at
    *heads* (the code's), in a transaction (a SAVEPOINT in the caller's) under
    the tenant's migration lock; its versions.  None: the snapshot is behind
    *heads*, nothing was done.  A tenant that exists is an error -- also
    one made meanwhile by a sign-up that took no lock (``migration_lock =
    false``): the server refuses the second schema of that name."""
    begin = conn.begin_nested if conn.in_transaction() else conn.begin
    try:
        with begin():
            if lock_timeout is not None:
                tenant_lock(conn, name, lock_timeout)
            if schema_exists(conn, name):
                raise exists(name, "schema")
            snapshot = snapshots.current(conn)
            if frozenset(snapshot.heads) != heads:
                return None
            make_tenant(conn, name, snapshot, spares)
    except Exception as exc:
        if _duplicate_schema(exc):
            raise exists(name, "schema") from exc
        raise
    return snapshot.heads


def _duplicate_schema(exc: Exception) -> bool:
    """*exc* is PostgreSQL refusing a schema whose name is taken (found at
    once, or once a concurrent creator committed), as SQLAlchemy or -- a
    script run on the driver's own connection -- the driver raises it."""
    orig = getattr(exc, "orig", None)
    state = getattr(exc, "sqlstate", None) or getattr(orig, "sqlstate", None)
    return state == "42P06" or (state == "23505" and "pg_namespace" in str(exc))


def after_template(
    conn: Connection, snapshots: Snapshots, spares: Spares | None
) -> None:
    """After a run reached the template: its snapshot stored and its spares
    filled, for the applications provisioning from them.  The template is
    migrated whatever happens here: a failure is a warning naming its cause
    (``python -m alembic_recipes tenant spares`` meets it again, whole),
    never the template's failure."""
    try:
        if snapshots.refresh(conn) and spares is not None:
            spares.fill(conn)
    except Interrupted:
        raise
    except (DBAPIError, CommandError) as exc:
        log.warning(
            "template tenant %r is migrated, but its snapshot or spare schemas"
            " were not made: %s",
            snapshots.template,
            first_line(exc),
        )


def make_tenant(
    conn: Connection, name: str, snapshot: Snapshot, spares: Spares | None
) -> None:
    """Schema *name* made at *snapshot*'s versions in *conn*'s transaction:
    a spare renamed when there is one, else the snapshot's script run."""
    if spares is not None and spares.claim(conn, name, snapshot):
        return
    snapshot.apply(conn, name)
    log.info(
        "tenant %r: copied from the snapshot of %r at %s",
        name,
        snapshot.template,
        ", ".join(snapshot.heads),
    )


def tenant_lock(conn: Connection, name: str, timeout: float) -> None:
    """Tenant *name*'s migration lock for the transaction (the key the fleet
    takes), waited for by the server -- an async caller's event loop goes on
    meanwhile -- for at most *timeout* seconds."""
    key = lock_key(conn.engine.url.database or "", name)
    previous = conn.scalar(text("SELECT current_setting('lock_timeout')"))
    conn.execute(
        text("SELECT set_config('lock_timeout', :t, true)"),
        {"t": f"{max(1, int(timeout * 1000))}ms"},
    )
    try:
        with conn.begin_nested():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    except DBAPIError as exc:
        if lock_timeout_of(exc) is None:
            raise
        raise CommandError(
            f"tenant {name!r}: timed out after {timeout:g} s waiting for its"
            " migration lock; nothing was changed (migration_lock_timeout waits"
            " longer)"
        ) from exc
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})


def snapshot_usable(run: Run, template: str, heads: Sequence[str], name: str) -> bool:
    """Whether new tenant *name* is made from the template at *heads*: its
    versions must be this code's, and this command's target at or past them
    (else the history is replayed, said).  A template that does not exist,
    or that is at revisions this code does not know, is an error."""
    if not heads:
        raise no_template(template)
    if not run.known_revisions(heads):
        raise CommandError(
            f"provision = snapshot: the template tenant {template!r} is at"
            f" {', '.join(heads)}, which this code's migrations do not know (they"
            f" end at {', '.join(sorted(run.heads))}): migrate it with this code's"
            " migrations, or provision from the code that made it"
        )
    targets = run.targets
    if not run.known_revisions(targets) or not all(
        run.applied(head, targets) for head in heads
    ):
        log.info(
            "tenant %r: the template is past %s; replaying the history instead",
            name,
            ", ".join(targets),
        )
        return False
    return True
