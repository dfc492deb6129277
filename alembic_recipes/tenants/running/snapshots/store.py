"""The template's snapshots: captured with ``pg_dump`` once per template
version, kept in the ``alembic_recipes_snapshot`` table of the run record's
schema (so that an application without ``pg_dump`` provisions from it too),
and by each process, which keeps the last one it read."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ....alembic_internals import VERSION_TABLE
from ....database.engines import display_url
from ....database.locks import lock_key
from ....logs import logger_for
from .script import Snapshot, quoted, statements

__all__ = ["SNAPSHOT_TABLE", "Snapshots", "no_template"]

log = logger_for(__package__ or __name__)

SNAPSHOT_TABLE = "alembic_recipes_snapshot"
"""Where captured snapshots are kept (the run record's schema)."""


class Snapshots:
    """The snapshots of one database's template tenant: read from the
    snapshot table, captured with ``pg_dump`` when the template has moved."""

    _kept: dict[tuple[str, str], Snapshot] = {}  # noqa: RUF012 - the process's
    """The last snapshot each (database, template) gave, per process."""

    def __init__(
        self, template: str, seed: Sequence[str], record_schema: str | None
    ) -> None:
        self.template = template
        self.seed = tuple(seed)
        self.schema = record_schema or "public"

    @property
    def table(self) -> str:
        return f"{quoted(self.schema)}.{quoted(SNAPSHOT_TABLE)}"

    def template_heads(self, conn: Connection) -> tuple[str, ...] | None:
        """The template's versions (sorted); None: its schema or version
        table does not exist."""
        table = f"{quoted(self.template)}.{quoted(VERSION_TABLE)}"
        if conn.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is None:
            return None
        found = conn.exec_driver_sql(f"SELECT version_num FROM {table}").scalars()
        return tuple(sorted(str(v) for v in found))

    def current(self, conn: Connection) -> Snapshot:
        """The template's snapshot at its current versions: kept, stored, or
        captured now (and stored, in *conn*'s transaction)."""
        heads = self.template_heads(conn)
        if not heads:
            raise no_template(self.template)
        key = (str(conn.engine.url), self.template)
        kept = self._kept.get(key)
        if kept is not None and kept.heads == heads and kept.seed == self.seed:
            return kept
        snapshot = self._stored(conn, heads)
        if snapshot is None:
            # one capture at a time per template: the others then read it
            one = lock_key(
                f"{conn.engine.url.database}/{SNAPSHOT_TABLE}", self.template
            )
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": one})
            snapshot = self._stored(conn, heads)
        if snapshot is None:
            snapshot = self.capture(conn, heads)
            self._store(conn, snapshot)
        self._kept[key] = snapshot
        return snapshot

    def refresh(self, conn: Connection) -> bool:
        """Store the template's snapshot now, if it has none at its current
        versions (after a run migrated it; in a transaction of its own);
        whether it is stored.  Without ``pg_dump`` here, a warning:
        provisioning captures it later."""
        if conn.in_transaction():
            return False  # a caller's transaction: provisioning captures it
        try:
            with conn.begin():
                self.current(conn)
        except CommandError as exc:
            log.warning("The template's snapshot was not captured: %s", exc)
            return False
        return True

    def _stored(self, conn: Connection, heads: tuple[str, ...]) -> Snapshot | None:
        if conn.scalar(text("SELECT to_regclass(:t)"), {"t": self.table}) is None:
            return None
        row = conn.execute(
            text(
                f"SELECT heads, seed, script, settings FROM {self.table}"
                " WHERE template = :t"
            ),
            {"t": self.template},
        ).first()
        if (
            row is None
            or tuple(row.heads.split()) != heads
            or tuple(row.seed.split()) != self.seed
        ):
            return None
        settings = tuple(row.settings.split())
        return Snapshot(self.template, heads, row.script, settings, self.seed)

    def _store(self, conn: Connection, snapshot: Snapshot) -> None:
        with conn.begin_nested():
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "template VARCHAR(63) PRIMARY KEY, heads TEXT NOT NULL,"
                " seed TEXT NOT NULL, script TEXT NOT NULL, settings TEXT NOT NULL,"
                " captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())"
            )
        conn.execute(
            text(
                f"INSERT INTO {self.table} (template, heads, seed, script, settings)"
                " VALUES (:template, :heads, :seed, :script, :settings)"
                " ON CONFLICT (template) DO UPDATE SET heads = excluded.heads,"
                " seed = excluded.seed, script = excluded.script,"
                " settings = excluded.settings, captured_at = now()"
            ),
            {
                "template": snapshot.template,
                "heads": " ".join(snapshot.heads),
                "seed": " ".join(self.seed),
                "script": snapshot.script,
                "settings": " ".join(snapshot.settings),
            },
        )

    def capture(self, conn: Connection, heads: tuple[str, ...]) -> Snapshot:
        """The template's DDL (and seed rows) as ``pg_dump`` writes them now;
        its versions read again after, so that a migration of the template
        committed meanwhile is never stored under the older versions."""
        for _ in range(3):
            script, settings = self._dump(conn)
            again = self.template_heads(conn)
            if again == heads:
                log.info(
                    "Captured the snapshot of template tenant %r at %s",
                    self.template,
                    ", ".join(heads),
                )
                return Snapshot(self.template, heads, script, settings, self.seed)
            heads = again or ()
        raise CommandError(
            f"provision = snapshot: the template tenant {self.template!r} kept"
            " changing while its snapshot was taken; try again"
        )

    def _dump(self, conn: Connection) -> tuple[str, tuple[str, ...]]:
        """The template schema's script: its DDL, its seed tables' rows, a
        ``REFRESH`` of its populated materialized views; and the settings
        the script sets."""
        schema = quoted(self.template)
        missing = [
            t
            for t in self.seed
            if conn.scalar(
                text("SELECT to_regclass(:t)"), {"t": f"{schema}.{quoted(t)}"}
            )
            is None
        ]
        if missing:
            raise CommandError(
                f"provision_seed: no table {', '.join(map(repr, missing))} in the"
                f" template tenant {self.template!r}: expected some of its tables"
            )
        script = _pg_dump(conn, "--schema-only", "--schema", schema)
        if self.seed:
            tables = [
                arg for t in self.seed for arg in ("--table", f"{schema}.{quoted(t)}")
            ]
            script += _pg_dump(
                conn, "--data-only", "--inserts", "--disable-triggers", *tables
            )
        populated = conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'm'"
                " AND c.relispopulated ORDER BY c.relname"
            ),
            {"s": self.template},
        ).scalars()
        lines, settings = statements(script)
        lines += [f"REFRESH MATERIALIZED VIEW {schema}.{quoted(v)};" for v in populated]
        return "\n".join(lines) + "\n", settings


def _pg_dump(conn: Connection, *args: str) -> str:
    """``pg_dump`` of *conn*'s database (same server, user and password)."""
    binary = os.environ.get("ALEMBIC_RECIPES_PG_DUMP") or shutil.which("pg_dump")
    if binary is None:
        raise CommandError(
            "provision = snapshot needs pg_dump to capture the template's snapshot"
            " (not found on PATH; or set ALEMBIC_RECIPES_PG_DUMP); a run where it"
            " is, a fleet upgrade say, stores one that this process then uses"
        )
    url = conn.engine.url
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    host = url.host or url.query.get("host")
    command = [binary, "--quote-all-identifiers", "--no-owner", *args]
    for flag, value in (("-h", host), ("-p", url.port), ("-U", url.username)):
        if value:
            command += [flag, str(value[0] if isinstance(value, tuple) else value)]
    command.append(url.database or "postgres")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise CommandError(f"pg_dump of {display_url(url)} failed: {said[-1]}")
    return done.stdout


def no_template(template: str) -> CommandError:
    return CommandError(
        f"provision = snapshot: the template tenant {template!r} does not exist"
        f" or is at base; create it with -x tenant={template} -x create=true"
        " upgrade head (a fleet run, -x tenant=all, does)"
    )
