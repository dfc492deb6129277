"""A schema tenant's snapshot: the template's DDL as one script, replayed
under a new name (:class:`Snapshot`)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ....alembic_internals import VERSION_TABLE
from ..segments import execute_script

__all__ = ["Snapshot", "literal", "quoted", "statements"]

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

    @functools.cached_property
    def digest(self) -> str:
        """What tells this snapshot from another of the same template (its
        script: DDL, seed rows, versions)."""
        text = "\0".join((self.script, *self.heads, *self.settings))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

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
                f"SELECT pg_catalog.set_config('{setting}', {literal(value)}, true);\n"
                for setting, value in zip(self.settings, values, strict=True)
            )
        rows = "".join(
            f"INSERT INTO {quoted(name)}.{quoted(VERSION_TABLE)} (version_num)"
            f" VALUES ({literal(head)});\n"
            for head in self.heads
        )
        execute_script(conn, self.script_for(name) + saved + rows)


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def statements(dump: str) -> tuple[list[str], tuple[str, ...]]:
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
