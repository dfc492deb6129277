"""Spare schemas made from the snapshot ahead of sign-ups
(``provision_spares``): a new tenant is then one ``ALTER SCHEMA ... RENAME``,
about a millisecond whatever the schema holds.

:meth:`Spares.fill` keeps ``provision_spares`` of them at the template's
versions -- each made in a transaction of its own, by one filler at a time
per template; the stale ones (other versions, after the template moved) and
any surplus dropped -- and :meth:`Spares.claim` takes one inside the new
tenant's transaction.  A spare is named after the template with ``~`` and a
random suffix, which no tenant name has, so no selection or pattern takes it
for a tenant; the ``alembic_recipes_spare`` table (the run record's schema)
lists them.

A rename keeps what PostgreSQL stores as text -- function bodies, their
``SET`` options, trigger arguments -- so spares are made only while none of
the template's mentions its schema's name; else a warning says so, and new
tenants are copied from the snapshot.
"""

from __future__ import annotations

import secrets

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ....database.locks import lock_key
from ....database.retries import lock_timeout_of
from ....logs import logger_for
from ...model.names import SPARE_MARK
from ...model.settings import TenantSettings
from .script import Snapshot, quoted
from .store import Snapshots

__all__ = ["SPARE_TABLE", "Spares"]

log = logger_for(__package__ or __name__)

SPARE_TABLE = "alembic_recipes_spare"
"""Where the spare schemas are listed (the run record's schema)."""

_MENTIONS = (
    "SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n"
    " ON n.oid = p.pronamespace WHERE n.nspname = :s AND (strpos(p.prosrc, :s) > 0"
    " OR strpos(coalesce(array_to_string(p.proconfig, ' '), ''), :s) > 0)"
    " UNION ALL SELECT 'trigger ' || t.tgname FROM pg_trigger t JOIN pg_class c"
    " ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = :s AND strpos(encode(t.tgargs, 'escape'), :s) > 0"
    " LIMIT 1"
)
"""The first object of the template whose text (kept as written, not
followed by a rename) holds the template's name."""


class Spares:
    """The spare schemas of one database's template.  A fill's transactions
    take the timeouts of the connection they run on (a fleet's, or
    :func:`~alembic_recipes.fill_spares`'s: ``lock_timeout``)."""

    def __init__(self, snapshots: Snapshots, count: int) -> None:
        self.snapshots = snapshots
        self.count = count

    @classmethod
    def of(cls, settings: TenantSettings) -> Spares:
        """The spares of *settings*' template (``provision_template``,
        ``provision_seed``, ``provision_spares``), with its snapshots
        (:attr:`snapshots`)."""
        provisioning = settings.provisioning
        snapshots = Snapshots(provisioning.template, provisioning.seed, settings.shared)
        return cls(snapshots, provisioning.spares)

    @property
    def table(self) -> str:
        return f"{quoted(self.snapshots.schema)}.{quoted(SPARE_TABLE)}"

    def _listed(self, conn: Connection) -> bool:
        found = conn.scalar(text("SELECT to_regclass(:t)"), {"t": self.table})
        return found is not None

    def claim(self, conn: Connection, name: str, snapshot: Snapshot) -> bool:
        """Rename a spare made from *snapshot* to *name*, in *conn*'s
        transaction (under the tenant's lock); False when there is none.
        Concurrent claims each take a different one (``SKIP LOCKED``)."""
        if self.count == 0 or not self._listed(conn):
            return False
        spare = conn.scalar(
            text(
                f"DELETE FROM {self.table} WHERE name = (SELECT s.name FROM"
                f" {self.table} s WHERE s.template = :t AND s.snapshot = :d AND EXISTS"
                " (SELECT 1 FROM pg_namespace n WHERE n.nspname = s.name)"
                " ORDER BY s.made_at, s.name LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING name"
            ),
            {"t": self.snapshots.template, "d": snapshot.digest},
        )
        if spare is None:
            return False
        conn.exec_driver_sql(f"ALTER SCHEMA {quoted(spare)} RENAME TO {quoted(name)}")
        log.info(
            "tenant %r: renamed from spare %r (the snapshot of %r at %s)",
            name,
            spare,
            snapshot.template,
            ", ".join(snapshot.heads),
        )
        return True

    def fill(self, conn: Connection) -> int:
        """Make spares until ``provision_spares`` are made from the template's
        current snapshot, one transaction each (a SAVEPOINT in a caller's); drop the
        stale and surplus ones.  How many were made; 0 at once when another
        process is filling.  A lock the application holds for longer than
        ``lock_timeout`` ends the fill with a warning (the next one goes on)."""
        template = self.snapshots.template
        key = lock_key(f"{conn.engine.url.database}/{SPARE_TABLE}", template)
        nested = conn.in_transaction()
        made = 0
        while True:
            try:
                with conn.begin_nested() if nested else conn.begin():
                    if not conn.scalar(
                        text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}
                    ):
                        return made
                    if not self._make_one(conn):
                        return made
            except DBAPIError as exc:
                found = lock_timeout_of(exc)
                if found is None:
                    raise
                log.warning(
                    "provision_spares: a spare schema of template tenant %r was not"
                    " made: a lock it needs was held longer than lock_timeout (%s);"
                    " the next fill makes it",
                    template,
                    found.error,
                )
                return made
            made += 1

    def _make_one(self, conn: Connection) -> bool:
        """In the fill's transaction: the stale and surplus spares dropped,
        then one more made, when fewer than ``provision_spares`` are left and
        a rename would keep the template's objects right; whether it was."""
        template = self.snapshots.template
        if self.count == 0 and not self._listed(conn):
            return False
        snapshot = self.snapshots.current(conn)
        have = self._prune(conn, snapshot)
        if have >= self.count:
            return False
        mention = conn.scalar(text(_MENTIONS), {"s": template})
        if mention is not None:
            log.warning(
                "provision_spares: no spare schemas made: the %s of template"
                " tenant %r holds its schema's name as text, which a rename"
                " would not follow; new tenants are copied from the snapshot",
                mention,
                template,
            )
            return False
        spare = f"{template[:50]}{SPARE_MARK}{secrets.token_hex(4)}"
        snapshot.apply(conn, spare)
        conn.execute(
            text(
                f"INSERT INTO {self.table} (name, template, heads, snapshot)"
                " VALUES (:n, :t, :h, :d)"
            ),
            {
                "n": spare,
                "t": template,
                "h": " ".join(snapshot.heads),
                "d": snapshot.digest,
            },
        )
        log.info(
            "Made spare schema %r of template tenant %r at %s (%d of %d)",
            spare,
            template,
            ", ".join(snapshot.heads),
            have + 1,
            self.count,
        )
        return True

    def _prune(self, conn: Connection, snapshot: Snapshot) -> int:
        """Drop the spares of another snapshot than *snapshot* (other versions,
        other seed tables) and those past ``provision_spares``; how many are
        left.  Those being claimed (their rows locked) are left to their
        claimers."""
        with conn.begin_nested():
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "name VARCHAR(63) PRIMARY KEY, template VARCHAR(63) NOT NULL,"
                " heads TEXT NOT NULL, snapshot VARCHAR(64) NOT NULL,"
                " made_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp())"
            )
        params = {"t": self.snapshots.template, "d": snapshot.digest}
        kept = conn.execute(
            text(
                f"SELECT name, snapshot = :d AS current FROM {self.table}"
                " WHERE template = :t ORDER BY made_at, name FOR UPDATE SKIP LOCKED"
            ),
            params,
        ).all()
        current = [row.name for row in kept if row.current]
        dropped = [row.name for row in kept if not row.current]
        dropped += current[self.count :]
        for spare in dropped:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted(spare)} CASCADE")
            conn.execute(
                text(f"DELETE FROM {self.table} WHERE name = :n"), {"n": spare}
            )
        if dropped:
            log.info(
                "Dropped %d spare schema%s of template tenant %r (stale or surplus)",
                len(dropped),
                "" if len(dropped) == 1 else "s",
                self.snapshots.template,
            )
        return min(len(current), self.count)
