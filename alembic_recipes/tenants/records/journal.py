"""One fleet run's record, kept as the run goes (the table: :mod:`.record`).

A :class:`Journal` belongs to one run: its id, command and target.  The
strategies hand it their way to the record's database (:meth:`Journal.bind`);
it writes the run's intent when the tenants are chosen (:meth:`Journal.begin`),
each tenant's outcome as the strategy commits it (:meth:`Journal.done`), the
failures and interruptions the run reports (it listens to the
:class:`~.report.Report`), and the tenants not reached when the run ends
(:meth:`Journal.finish`).  What ``-x tenant=failed`` selects from the rows:
:mod:`.resume`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Dialect

from ...database.connections import own_read
from ...database.errors import first_line
from ...logs import logger_for
from .outcomes import Outcome, shown_revisions, status_of
from .record import (
    NEEDS_REPAIR,
    NOT_ATTEMPTED,
    PENDING,
    RUNNING,
    UNFINISHED,
    Row,
    mark_unreached,
    outcome_sql,
    read_rows,
    set_outcome,
    write_outcome,
    write_rows,
)
from .repair import NeedsRepair

__all__ = ["Journal", "Writer"]

log = logger_for(__name__)
T = TypeVar("T")
Writer = Callable[[Callable[[Connection, str | None], Any]], Any]
"""``writer(fn)`` calls ``fn(connection, schema)`` on the record's database
(outside any tenant's transaction); returns what *fn* returns, or None when
there is no record."""
_AT_HEAD = "already at head"


class Journal:
    """The record of one run (*records*: whether this run keeps one)."""

    def __init__(
        self,
        command: str,
        heads: frozenset[str],
        targets: Sequence[str],
        *,
        records: bool,
        server_of: Callable[[str], str | None] = lambda name: None,
    ) -> None:
        self.active = records
        self.command = command
        self.heads = heads
        self.run_id = uuid.uuid4().hex[:16]
        self.host = f"{socket.gethostname()}:{os.getpid()}"
        self.target: str | None = shown_revisions(targets) if targets else None
        """What this run takes its tenants to, as rows store it."""
        self._server_of = server_of
        self._writers: dict[str | None, Writer] = {}
        self._started: dict[str, float] = {}
        self._kept: set[str] = set()
        """Tenants whose row already says they finished at this target."""
        self._failed_writes = 0
        self.written_by_workers: set[str] = set()
        """Tenants whose failure a worker process recorded itself."""
        self._ready: set[str | None] = set()
        """Servers whose record holds this run's rows: a tenant's row may be
        written in its own transaction (it cannot fail for want of the table)."""
        self._repairs: dict[str, tuple[str, str | None]] = {}
        """Tenants a run left in a revision that commits as it goes: the
        revision, and the diagnosis recorded."""
        self.shard: str | None = None
        """``K/N`` of this run's ``-x shard=K/N``, kept in its rows."""
        self.shared_run = False
        """Runners share this run (``-x shard=claim``, :attr:`run_id` theirs):
        one runner's end is not the run's, its pending tenants are others'."""

    def bind(self, server: str | None, writer: Writer) -> None:
        """The record of *server*'s tenants (None: the one database) is
        written through *writer*."""
        self._writers.setdefault(server, writer)

    def join(self) -> None:
        """Another runner of this shared run recorded its intent: each
        tenant's row may be written in the tenant's own transaction."""
        self._ready.update(self._writers)

    # -- the run's start -----------------------------------------------------------
    def begin(
        self, names: Sequence[str], at_head: Callable[[str], bool | None]
    ) -> None:
        """Record the run's intent: each of *names* ``pending`` -- or ``already
        at head`` where *at_head* says so (None: not known before its own
        connection reads it) -- in one transaction per record; a tenant whose
        row says it finished at this target is left as it is."""
        if not self.active or not names:
            return
        for server, mine in self._by_server(names).items():
            self._begin_on(server, mine, at_head)

    def _by_server(self, names: Sequence[str]) -> dict[str | None, list[str]]:
        """*names* grouped by the server whose record holds their rows."""
        found: dict[str | None, list[str]] = {}
        for name in names:
            found.setdefault(self._server_of(name), []).append(name)
        return found

    def _begin_on(
        self,
        server: str | None,
        names: list[str],
        at_head: Callable[[str], bool | None],
    ) -> None:
        def read(conn: Connection, schema: str | None) -> list[Row] | None:
            with own_read(conn):
                return read_rows(conn, schema, names)

        found = self._write_on(server, read, quiet=False)
        existing = {row.tenant: row for row in found or []}
        entries = []
        for name in names:
            entry = self._intent(name, existing.get(name), at_head)
            if entry is not None:
                entries.append(entry)
        if entries:

            def write(conn: Connection, schema: str | None) -> bool:
                write_rows(conn, schema, entries)
                return True

            if not self._write_on(server, write):
                return  # its rows are written after each tenant, never within
        elif found is None:
            return
        self._ready.add(server)

    def _intent(
        self, name: str, row: Row | None, at_head: Callable[[str], bool | None]
    ) -> dict[str, Any] | None:
        """Tenant *name*'s row to write when the run begins (None: none --
        its row waits for a repair, or already says this run's target)."""
        if row is not None and row.status in (RUNNING, NEEDS_REPAIR):
            if row.to_revision:  # kept until the tenant is repaired
                self._repairs[name] = (row.to_revision, row.error)
                return None
        known = at_head(name)
        finished = (
            row is not None
            and not row.unfinished
            and self.target is not None
            and row.target == self.target
        )
        if finished and known is not False:
            self._kept.add(name)
            return None
        if known:
            return self.entry(name, _AT_HEAD, self.heads, self.heads)
        return self.entry(name, PENDING)

    # -- each tenant ---------------------------------------------------------------
    def start(self, name: str) -> None:
        """Tenant *name* starts (its first attempt's time is kept)."""
        self._started.setdefault(name, time.time())

    def running(self, name: str, revision: str) -> None:
        """Tenant *name*'s *revision* starts, where DDL commits as it runs: its
        row says so first (:mod:`.repair`)."""
        if not self.active:
            return
        entry = {**self.entry(name, RUNNING), "to": revision}
        self._write_on(
            self._server_of(name),
            lambda conn, schema: write_outcome(conn, schema, entry),
        )

    def check_repair(self, name: str, applied: Callable[[str], bool]) -> None:
        """Raise :class:`~.repair.NeedsRepair` when a run left tenant *name*
        inside a revision that commits as it goes and its version says the
        revision is not *applied* (else it was repaired, or had finished)."""
        found = self._repairs.get(name)
        if found is None:
            return
        revision, diagnosis = found
        if applied(revision):
            del self._repairs[name]
            return
        if diagnosis and diagnosis.startswith(f"{name}: needs repair"):
            raise NeedsRepair(name, revision, diagnosis)
        raise NeedsRepair.killed(name, revision)

    def done(
        self,
        name: str,
        result: Outcome,
        on: tuple[Connection, str | None] | None = None,
    ) -> None:
        """Record tenant *name*'s outcome *result*: on *on* -- ``(connection,
        schema)`` inside the tenant's own transaction, before its commit --
        or, after the commit, through the record's writer."""
        if not self.active:
            return
        status, before, after = status_of(self.command, result, self.heads)
        if status == _AT_HEAD and name in self._kept:
            return  # its row says so already
        entry = self.entry(name, status, before, after)
        if on is not None and self._server_of(name) in self._ready:
            set_outcome(*on, entry)
            return
        self._write_on(
            self._server_of(name),
            lambda conn, schema: write_outcome(conn, schema, entry),
        )

    def committed(self, name: str, versions: Sequence[str]) -> None:
        """Tenant *name* committed before a stop: it is at *versions* (its
        versions before are not known here)."""
        if not self.active:
            return
        status, _, _ = status_of(self.command, ([""], versions), self.heads)
        entry = {**self.entry(name, status, (), versions), "from": None}
        self._write_on(
            self._server_of(name),
            lambda conn, schema: write_outcome(conn, schema, entry),
        )

    def done_sql(
        self, name: str, result: Outcome, dialect: Dialect, schema: str | None
    ) -> str | None:
        """:meth:`done` as one SQL statement (None: nothing to write), for the
        caller to send with the tenant's last script, in its transaction."""
        if not self.active or self._server_of(name) not in self._ready:
            return None
        status, before, after = status_of(self.command, result, self.heads)
        if status == _AT_HEAD and name in self._kept:
            return None
        return outcome_sql(dialect, schema, self.entry(name, status, before, after))

    def reported(self, name: str, entry: dict[str, Any]) -> None:
        """The report's entry for *name* (a :class:`~.report.Report`
        listener): a failure, an interruption or a tenant of a server that
        does not answer is written now; what a tenant's commit did is written
        by :meth:`done`."""
        if not self.active or entry["status"] not in UNFINISHED:
            return
        if name in self.written_by_workers:
            return
        row = {
            **self.entry(name, entry["status"]),
            "error": entry.get("error"),
            "seconds": entry.get("seconds"),
        }
        if entry["status"] == NEEDS_REPAIR:
            row["to"] = entry.get("to")  # the revision to repair
        self._write_on(
            self._server_of(name), lambda conn, schema: write_outcome(conn, schema, row)
        )

    def entry(
        self,
        name: str,
        status: str,
        before: Sequence[str] | frozenset[str] = (),
        after: Sequence[str] | frozenset[str] = (),
    ) -> dict[str, Any]:
        """The row of tenant *name* with *status*, as this run writes it."""
        started = self._started.get(name)
        unfinished = status in UNFINISHED
        return {
            "tenant": name,
            "status": status,
            "from": None if unfinished else shown_revisions(before),
            "to": None if unfinished else shown_revisions(after),
            "started": (
                datetime.fromtimestamp(started, UTC).isoformat() if started else None
            ),
            "seconds": round(time.time() - started, 4) if started else None,
            "error": None,
            "run_id": self.run_id,
            "command": self.command,
            "target": self.target,
            "server": self._server_of(name),
            "shard": self.shard,
        }

    # -- the run's end -------------------------------------------------------------
    def not_attempted(self, names: Sequence[str]) -> None:
        """*names* will not be run (a shared run stopped before them)."""
        if not self.active or not names:
            return
        for server, mine in self._by_server(names).items():
            rows = [self.entry(name, NOT_ATTEMPTED) for name in mine]
            self._write_on(server, partial(_write_rows, rows=rows))

    def finish(self) -> None:
        """The run ends: its tenants still ``pending`` were not attempted."""
        if not self.active or self.shared_run:
            return
        for server in list(self._writers):
            self._write_on(
                server,
                lambda conn, schema: mark_unreached(
                    conn, schema, self.run_id, NOT_ATTEMPTED
                ),
            )

    # -- writing -------------------------------------------------------------------
    def _write_on(
        self,
        server: str | None,
        fn: Callable[[Connection, str | None], T],
        *,
        quiet: bool = True,
    ) -> T | None:
        """``fn(connection, schema)`` on *server*'s record, else on another's
        (its server may not answer); a failure is logged, never raised over
        the run's own outcome."""
        order = [server, *(s for s in self._writers if s != server)]
        writers = [self._writers[s] for s in order if s in self._writers]
        error: Exception | None = None
        for writer in writers:
            try:
                return writer(fn)  # type: ignore[no-any-return]
            except Exception as exc:
                error = error or exc
        if error is not None:
            self._failed_writes += 1
            if self._failed_writes == 1 or not quiet:
                log.warning(
                    "could not write the run record: %s: %s",
                    type(error).__name__,
                    first_line(error),
                )
        return None


def _write_rows(
    conn: Connection, schema: str | None, *, rows: list[dict[str, Any]]
) -> None:
    write_rows(conn, schema, rows)
