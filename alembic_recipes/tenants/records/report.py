"""What one fleet run says: a line per tenant, failures in full, the summary.

Every tenant logs one line through Alembic's logging (``[3/200] acme:
upgraded base -> 3f2a9c (5 revisions) in 35 ms``), the run ends with one
summary line, and fails when a tenant failed.  A fleet logs each failure
once, in full (traceback and SQL), and its final error is chained to the
first failure.  ``current`` ends with how many tenants are at each revision.

The run's record -- per tenant: status, from and to revision, start, duration
and a failure's one-line cause, then one summary object -- is written as JSON
Lines to ``-x report=PATH`` as the run goes (:mod:`.report_file`); each entry
also goes to the report's :attr:`~Report.listeners` (the run record in the
database, :mod:`.journal`).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any

from alembic.util import CommandError

from ...logs import logger_for
from ..selection.selection import AUTOGENERATE_COMMANDS
from .outcomes import (
    AT_HEAD,
    DIFFERS,
    INTERRUPTED,
    NO_VERSIONS,
    VERBS,
    Outcome,
    Versions,
    failure_cause,
    iso_time,
    shown_revisions,
    status_of,
)
from .progress import Progress
from .report_file import ReportFile
from .summary import Summary

__all__ = ["Report"]

log = logger_for(__name__)


class Report(Summary):
    """The outcomes of one run over *total* tenants, logged as they come."""

    def __init__(
        self,
        command: str,
        heads: frozenset[str],
        steps: Callable[[Sequence[str], Sequence[str]], int],
        *,
        shared: bool = False,
        keep_going: bool = False,
        path: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.command = command
        self.path = path
        """``-x report=PATH``: where the record goes (JSON Lines)."""
        self.file = ReportFile(path) if path is not None else None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with each tenant's entry as it is made (the run record)."""
        self.stopped_at: str | None = None
        """The rollout wave that stopped the run (``wave 2 of 3 (10%)``)."""
        self.names: list[str] = []
        """The selected tenants, in order (set when selected)."""
        self.entries: dict[str, dict[str, Any]] = {}
        """The record: one entry per tenant that ran, by name."""
        self.started = time.time()
        self.progress = progress or Progress("lines", 0.0, changes=False)
        """How the run shows how far it is (:mod:`.progress`)."""
        self.heads = heads
        self.steps = steps
        """How many revisions lie between two sets of versions."""
        self.shared = shared
        self.keep_going = keep_going
        self.total = 0
        self.outcomes: dict[str, list[str]] = {}
        self.failures: list[tuple[str, Exception]] = []
        self.interrupted: list[str] = []
        """Tenants the run was on when interrupted (rolled back)."""
        self.part_way: list[str] = []
        """Of those, the ones an ``autocommit_block()`` had committed in part."""
        self.was_interrupted = False
        self.signum: int | None = None
        """The signal that stopped the run (None: none, or not a signal)."""
        self.worker_errors: list[Exception] = []
        self.unfinished: list[str] | None = None
        """``current``: the tenants the last recorded fleet run left failed or
        not attempted (None: no run recorded)."""
        self.servers: dict[str, str] = {}
        """With ``servers``: each selected tenant's server."""
        self.claims = False
        """A claiming runner: :attr:`names` are the tenants it claimed."""

    def prefix(self, index: int, name: str) -> str:
        """A tenant line's start: ``[3/200] acme:``, ``[3/200] acme (eu1):``."""
        server = self.servers.get(name)
        where = f" ({server})" if server else ""
        return f"[{index}/{self.total}] {name}{where}:"

    def begin(self, names: list[str]) -> None:
        """The run's tenants are chosen: *names*, in order."""
        self.names = names
        self.total = len(names)
        self.progress.start(self.total)
        if self.file is not None and names:
            self.file.open()

    def claiming(self, total: int) -> None:
        """A claiming runner (``-x shard=claim``): its record holds the tenants
        it claims (:meth:`claimed`), shown against the run's *total*."""
        self.names = []
        self.total = total
        self.claims = True

    def claimed(self, name: str) -> None:
        """A claiming runner took tenant *name*."""
        self.names.append(name)

    def status_of(self, name: str) -> str | None:
        """Tenant *name*'s status in this run (None: no outcome yet)."""
        entry = self.entries.get(name)
        return None if entry is None else str(entry["status"])

    def record(
        self,
        index: int,
        name: str,
        result: Outcome,
        seconds: float,
        *,
        diff: list[str] | None = None,
    ) -> None:
        """Log tenant *name*'s line (the *index*-th done) and count its outcome
        (*diff*: what a fleet ``check`` found, see :func:`diff_lines`)."""
        prefix = f"shared scope {name}:" if self.shared else self.prefix(index, name)
        if diff is not None:
            self._compared(prefix, name, diff, seconds)
        elif self.command not in AUTOGENERATE_COMMANDS:
            status, before, after = self._line(prefix, name, result, seconds)
            self._entry(name, status, seconds, before, after)
        else:
            return
        self.progress.advance(self.done)

    def _compared(
        self, prefix: str, name: str, diff: list[str], seconds: float
    ) -> None:
        """A fleet ``check``'s line for one tenant: what differs, or nothing."""
        if diff:
            count = sum(1 for line in diff if line.startswith("op."))
            log.warning(
                "%s %d new upgrade operation%s detected:\n%s",
                prefix,
                count,
                "" if count == 1 else "s",
                textwrap.indent("\n".join(diff), "    "),
            )
            status = DIFFERS
        else:
            log.info("%s no new upgrade operations detected", prefix)
            status = "no changes"
        self.outcomes.setdefault(status, []).append(name)
        self._entry(name, status, seconds, self.heads, self.heads)
        self.entries[name]["diff"] = diff

    def record_failure(
        self,
        index: int,
        name: str,
        exc: Exception,
        seconds: float,
        *,
        text: str | None = None,
    ) -> None:
        """Log tenant *name*'s failure once, in full: traceback and SQL (*text*
        when it happened in a worker process); a CommandError as one line."""
        prefix = self.prefix(index, name)
        ms = seconds * 1000
        if text is not None:
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, text)
        elif isinstance(exc, CommandError):  # one line; a diagnosis with its cause
            cause = exc.__cause__ if getattr(exc, "show_cause", False) else None
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, exc, exc_info=cause)
        else:
            log.error(
                "%s FAILED after %.0f ms: %s", prefix, ms, type(exc).__name__,
                exc_info=exc,
            )  # fmt: skip
        status = str(getattr(exc, "status", "failed"))
        self.outcomes.setdefault(status, []).append(name)
        self.failures.append((name, exc))
        revision = getattr(exc, "revision", None)
        self._entry(name, status, seconds, error=failure_cause(exc), revision=revision)
        self.progress.advance(self.done, failed=True)

    def record_committed(
        self, index: int, name: str, versions: Sequence[str], seconds: float
    ) -> None:
        """The run was stopped on tenant *name*, whose commit got through
        first: its versions, read again, are *versions*."""
        status = VERBS.get(self.command, self.command)
        log.info(
            "%s %s to %s: committed before the stop (in %.0f ms)",
            self.prefix(index, name),
            status,
            shown_revisions(versions),
            seconds * 1000,
        )
        self.outcomes.setdefault(status, []).append(name)
        self._entry(name, status, seconds, (), versions)
        self.progress.advance(self.done)

    def record_interrupted(
        self, name: str, seconds: float = 0.0, *, at: Sequence[str] | None = None
    ) -> None:
        """The run was stopped on tenant *name*; its versions were read again:
        its transaction rolled back, or (*at*) an ``autocommit_block()`` had
        committed it up to *at*, the rest rolled back."""
        prefix = self.prefix(len(self.interrupted) + self.done + 1, name)
        ms = seconds * 1000
        error = None
        if at is None:
            log.warning("%s interrupted after %.0f ms: rolled back", prefix, ms)
        else:
            error = (
                f"stopped part-way: committed up to {shown_revisions(at)} (an"
                " autocommit_block() commits as it goes), the rest rolled back"
            )
            log.warning("%s interrupted after %.0f ms: %s", prefix, ms, error)
            self.part_way.append(name)
        self.interrupted.append(name)
        self._entry(name, INTERRUPTED, seconds, error=error)
        self.interrupt()

    def interrupt(self, signum: int | None = None) -> None:
        """The run was stopped (Ctrl-C, SIGTERM): the rest is not attempted."""
        self.was_interrupted = True
        self.signum = signum or self.signum

    def record_worker_error(self, exc: Exception) -> None:
        """A worker process failed outside any tenant (e.g. could not connect)."""
        self.worker_errors.append(exc)

    def _entry(
        self,
        name: str,
        status: str,
        seconds: float,
        before: Sequence[str] | frozenset[str] = (),
        after: Sequence[str] | frozenset[str] = (),
        *,
        error: str | None = None,
        revision: str | None = None,
    ) -> None:
        """Tenant *name*'s entry (*revision*: the one it needs repaired in)."""
        entry = self.entries[name] = {
            "tenant": name,
            **({"server": self.servers[name]} if name in self.servers else {}),
            "status": status,
            "from": None if status in NO_VERSIONS else shown_revisions(before),
            "to": None if status in NO_VERSIONS else shown_revisions(after),
            "started": iso_time(time.time() - seconds),
            "seconds": round(seconds, 4),
            "error": error,
        }
        if revision is not None:
            entry["to"] = revision
        for listener in self.listeners:
            listener(name, entry)
        if self.file is not None and self.command not in AUTOGENERATE_COMMANDS:
            self.file.add(name, entry)

    def _line(
        self, prefix: str, name: str, result: Outcome, seconds: float
    ) -> tuple[str, Versions, Versions]:
        """Log the tenant's line; its status, versions before and after."""
        status, before, after = status_of(self.command, result, self.heads)
        self.outcomes.setdefault(status, []).append(name)
        if status == AT_HEAD:
            extra = f"; {result}" if isinstance(result, str) else ""
            log.info(
                "%s already at head (%s%s)", prefix, shown_revisions(self.heads), extra
            )
        elif self.command == "current":
            log.info("%s %s (%s)", prefix, shown_revisions(after), status)
        elif status == "unchanged":
            ms = seconds * 1000
            log.info(
                "%s %s, nothing to do (%.0f ms)", prefix, shown_revisions(after), ms
            )
        else:
            steps = self.steps(list(before), list(after))
            log.info(
                "%s %s %s -> %s (%d revision%s) in %.0f ms",
                prefix,
                status,
                shown_revisions(before),
                shown_revisions(after),
                steps,
                "" if steps == 1 else "s",
                seconds * 1000,
            )
        return status, before, after
