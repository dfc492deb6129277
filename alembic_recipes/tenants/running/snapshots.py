"""A schema tenant made from a snapshot of the template tenant (``provision
= snapshot``, schema strategy on PostgreSQL).

The snapshot is the template schema's DDL as ``pg_dump --schema-only
--quote-all-identifiers`` writes it -- every kind of object PostgreSQL has,
in an order it can be replayed in -- with the rows of the ``provision_seed``
tables and a ``REFRESH`` of each populated materialized view.  Every name of
the template's schema in it is the quoted identifier ``"<template>"``, which
:meth:`Snapshot.script_for` replaces with the new tenant's.

It is captured once per template version (``pg_dump`` runs then, and only
then) and kept in the ``alembic_recipes_snapshot`` table of the run record's
schema, so that an application without ``pg_dump`` provisions from it too; a
process keeps the last one it read.  Applying it is one script in the
tenant's transaction, whatever the history's length.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...alembic_internals import VERSION_TABLE
from ...database.engines import display_url
from ...database.locks import lock_key
from ...logs import logger_for
from ..model.names import exists
from .run import Run
from .schema_state import schema_exists
from .segments import execute_script

__all__ = [
    "SNAPSHOT_TABLE",
    "Snapshot",
    "Snapshots",
    "copy_schema",
    "quoted",
    "snapshot_usable",
    "tenant_lock",
]

log = logger_for(__name__)

SNAPSHOT_TABLE = "alembic_recipes_snapshot"
"""Where captured snapshots are kept (the run record's schema)."""

_SESSION_ONLY = (
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
    "client_encoding",
    "standard_conforming_strings",
    "client_min_messages",
    "row_security",
)
"""``SET``s of pg_dump's preamble that the tenant's transaction keeps its own
(its timeouts, the driver's encoding); the others are made ``SET LOCAL``."""


def quoted(name: str) -> str:
    """*name* as ``pg_dump --quote-all-identifiers`` writes it."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Snapshot:
    """The template's DDL at :attr:`heads`, ready to replay under a new name."""

    template: str
    heads: tuple[str, ...]
    script: str
    settings: tuple[str, ...]
    """The settings the script sets (``SET LOCAL``), put back after it."""
    seed: tuple[str, ...] = ()
    """The tables whose rows it holds."""

    def script_for(self, name: str) -> str:
        return self.script.replace(quoted(self.template), quoted(name))

    def apply(self, conn: Connection, name: str) -> None:
        """Make schema *name* a copy of the template at :attr:`heads`, inside
        *conn*'s transaction: its DDL, seed rows, and version rows."""
        saved = ""
        if self.settings:
            values = conn.execute(
                text(
                    "SELECT "
                    + ", ".join(
                        f"current_setting(:s{i})" for i in range(len(self.settings))
                    )
                ),
                {f"s{i}": setting for i, setting in enumerate(self.settings)},
            ).one()
            saved = "".join(
                f"SELECT pg_catalog.set_config('{setting}', {_literal(value)}, true);\n"
                for setting, value in zip(self.settings, values, strict=True)
            )
        rows = "".join(
            f"INSERT INTO {quoted(name)}.{quoted(VERSION_TABLE)} (version_num)"
            f" VALUES ({_literal(head)});\n"
            for head in self.heads
        )
        execute_script(conn, self.script_for(name) + saved + rows)
        log.info(
            "tenant %r: copied from the snapshot of %r at %s",
            name,
            self.template,
            ", ".join(self.heads),
        )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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

    def refresh(self, conn: Connection) -> None:
        """Store the template's snapshot now, if it has none at its current
        versions (after a run migrated it; in a transaction of its own).
        Without ``pg_dump`` here, a warning: provisioning captures it later."""
        if conn.in_transaction():
            return  # a caller's transaction: provisioning captures it
        try:
            with conn.begin():
                self.current(conn)
        except CommandError as exc:
            log.warning("The template's snapshot was not captured: %s", exc)

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
        lines, settings = _statements(script)
        lines += [f"REFRESH MATERIALIZED VIEW {schema}.{quoted(v)};" for v in populated]
        return "\n".join(lines) + "\n", settings


def _statements(dump: str) -> tuple[list[str], tuple[str, ...]]:
    """pg_dump's output as a script for the tenant's transaction: no
    comments or psql meta-commands, its ``SET``s made ``SET LOCAL`` (those
    of the session left out), no ``search_path`` of its own (every name is
    qualified)."""
    lines: list[str] = []
    settings: dict[str, None] = {}
    for line in dump.splitlines():
        if not line or line.startswith(("--", "\\")):
            continue
        if line.startswith(
            ("SELECT pg_catalog.set_config('search_path'", "SET SESSION AUTHORIZATION")
        ):
            continue
        if line.startswith("SET ") and line.endswith(";"):
            name = line[4:].split("=", 1)[0].strip()
            if name not in _SESSION_ONLY:
                settings[name] = None
                lines.append("SET LOCAL " + line[4:])
            continue
        lines.append(line)
    return lines, tuple(settings)


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


def copy_schema(
    conn: Connection,
    name: str,
    snapshots: Snapshots,
    heads: frozenset[str],
    lock_timeout: float | None,
) -> tuple[str, ...] | None:
    """Make the new schema tenant *name* from the snapshot when it is at
    *heads* (the code's), in a transaction (a SAVEPOINT in the caller's) under
    the tenant's migration lock; its versions.  None: the snapshot is behind
    *heads*, nothing was done.  A tenant that exists is an error."""
    begin = conn.begin_nested if conn.in_transaction() else conn.begin
    with begin():
        if lock_timeout is not None:
            tenant_lock(conn, name, lock_timeout)
        if schema_exists(conn, name):
            raise exists(name, "schema")
        snapshot = snapshots.current(conn)
        if frozenset(snapshot.heads) != heads:
            return None
        snapshot.apply(conn, name)
    return snapshot.heads


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
        if getattr(exc.orig, "sqlstate", None) != "55P03" and "lock timeout" not in str(
            exc
        ):
            raise
        raise CommandError(
            f"tenant {name!r}: timed out after {timeout:g} s waiting for its"
            " migration lock; nothing was changed (migration_lock_timeout waits"
            " longer)"
        ) from exc
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})


def no_template(template: str) -> CommandError:
    return CommandError(
        f"provision = snapshot: the template tenant {template!r} does not exist"
        f" or is at base; create it with -x tenant={template} -x create=true"
        " upgrade head (a fleet run, -x tenant=all, does)"
    )


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
