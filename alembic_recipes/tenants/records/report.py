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
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

from ...database.connections import first_line
from ...database.stopping import Interrupted, signal_name
from ...logs import logger_for
from ..selection.selection import AUTOGENERATE_COMMANDS
from .progress import Progress
from .report_file import ReportFile

__all__ = [
    "MIGRATED_ELSEWHERE",
    "Outcome",
    "Report",
    "diff_lines",
    "failure_cause",
    "shown_revisions",
    "status_of",
]

log = logger_for(__name__)

MIGRATED_ELSEWHERE = "migrated by another run meanwhile"
Outcome = tuple[Sequence[str], Sequence[str]] | str | None
"""One tenant's result: ``(versions before, versions after)``; None when the
batched read found it at head; :data:`MIGRATED_ELSEWHERE` when it was found at
head once locked."""

DIFFERS = "differs from the models"
INTERRUPTED = "interrupted (rolled back)"
_AT_HEAD = "already at head"
_NO_VERSIONS = ("failed", INTERRUPTED, "not attempted", "needs repair")
_VERBS = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}
Versions = Sequence[str] | frozenset[str]


def status_of(
    command: str, result: Outcome, heads: frozenset[str]
) -> tuple[str, Versions, Versions]:
    """A tenant's status after *command* gave *result*, and its versions
    before and after: ``upgraded``, ``unchanged``, ``already at head`` ..."""
    if result is None or isinstance(result, str):
        return _AT_HEAD, heads, heads
    before, after = result
    if command == "current":
        state = "at head" if frozenset(after) == heads else "behind head"
        return state, before, after
    if tuple(before) == tuple(after):
        return "unchanged", before, after
    return _VERBS.get(command, command or "ran"), before, after


class Report:
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

    @property
    def done(self) -> int:
        """Tenants with an outcome so far."""
        return sum(len(v) for v in self.outcomes.values())

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
        status = _VERBS.get(self.command, self.command)
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
            "from": None if status in _NO_VERSIONS else shown_revisions(before),
            "to": None if status in _NO_VERSIONS else shown_revisions(after),
            "started": _iso(time.time() - seconds),
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
        if status == _AT_HEAD:
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

    def finish(self) -> None:
        """Log the summary; raise (non-zero exit) if any tenant failed."""
        self.progress.close()
        if self.command == "revision" or self.shared:
            return
        if self.command == "check" and not self.entries and not self.failures:
            return  # one tenant: Alembic's own check says it
        if self.interrupted:
            self.outcomes[INTERRUPTED] = self.interrupted
        if self.claims:  # this runner's tenants; the run's line is the claims'
            self.total = len(self.names)
        done = self.done
        parts = [f"{len(v)} {k}" for k, v in self.outcomes.items()]
        if done < self.total:
            parts.append(f"{self.total - done} not attempted")
        if self.stopped_at:
            parts.append(f"rollout stopped at {self.stopped_at}")
        log.info("Tenants: %d total: %s", self.total, ", ".join(parts) or "none")
        self._per_server()
        if self.command == "current":
            self._histogram()
        self.write()
        self._raise_for_differences()
        self._raise_for_failures(done)

    def _per_server(self) -> None:
        """With ``servers``: one summary line per server."""
        for server, counts in self.server_statuses().items():
            total = sum(counts.values())
            parts = ", ".join(f"{count} {status}" for status, count in counts.items())
            plural = "" if total == 1 else "s"
            log.info("Server %s: %d tenant%s: %s", server, total, plural, parts)

    def server_statuses(self) -> dict[str, dict[str, int]]:
        """Per server (``servers``), how many tenants ended in each status."""
        found: dict[str, Counter[str]] = {}
        for line in self.lines():
            server = self.servers.get(line["tenant"])
            if server is not None:
                found.setdefault(server, Counter())[line["status"]] += 1
        return {server: dict(counts) for server, counts in found.items()}

    def _histogram(self) -> None:
        """``current``: how many tenants are at each revision."""
        at = Counter(e["to"] for e in self.entries.values() if e["status"] != "failed")
        if not at:
            return
        head = shown_revisions(self.heads)
        parts = []
        for revision, count in at.most_common():
            if revision == head:
                parts.append(f"{count} at {revision} (head)")
            else:
                behind = self.steps(_split(revision), sorted(self.heads))
                parts.append(f"{count} at {revision} ({behind} behind)")
        unfinished = [n for n in self.unfinished or () if n in self.entries]
        if unfinished:
            shown = ", ".join(unfinished[:5]) + (", ..." if len(unfinished) > 5 else "")
            parts.append(f"{len(unfinished)} unfinished in the run record ({shown})")
        log.info("Revisions: %s", "; ".join(parts))

    def lines(self) -> list[dict[str, Any]]:
        """The record: one entry per selected tenant, in order (those not
        reached: ``not attempted``)."""
        return [
            self.entries.get(name) or _not_attempted(name, self.servers.get(name))
            for name in self.names
        ]

    def write(self) -> None:
        """Write the record to ``-x report=PATH``: one JSON object per tenant
        (those not reached: ``not attempted``), then the summary."""
        if self.file is None:
            return
        lines = self.lines()
        counts = Counter(entry["status"] for entry in lines)
        summary = {
            "summary": True,
            "command": self.command,
            "total": self.total,
            "statuses": dict(counts),
            "failed": [name for name, _ in self.failures],
            "stopped_at": self.stopped_at,
            **({"servers": self.server_statuses()} if self.servers else {}),
            **(
                {"unfinished_last_run": self.unfinished}
                if self.unfinished is not None
                else {}
            ),
            "started": _iso(self.started),
            "seconds": round(time.time() - self.started, 3),
        }
        self.file.close(lines, summary)
        log.info("Run record: %s", self.path)

    def _raise_for_differences(self) -> None:
        """A fleet ``check``: fail when a tenant differs from the models."""
        differing = self.outcomes.get(DIFFERS, [])
        if not differing:
            return
        failed = f"; {len(self.failures)} failed" if self.failures else ""
        raise CommandError(
            f"check: {len(differing)} of {self.total} tenants differ from the"
            f" target metadata: {', '.join(differing)}{failed}; each difference is"
            " logged above"
        )

    def _raise_for_failures(self, done: int) -> None:
        if self.was_interrupted:
            by = signal_name(self.signum) if self.signum else "a stop"
            failed = f", {len(self.failures)} failed" if self.failures else ""
            part = len(self.part_way)
            rolled = len(self.interrupted) - part
            part_way = f", {part} stopped part-way" if part else ""
            raise Interrupted(
                f"interrupted by {by}: {rolled} of {self.total} tenants rolled back"
                f"{part_way}, {self.total - done} not attempted{failed}"
                " (-x tenant=failed resumes); every other tenant committed whole",
                self.signum,
            )
        if self.worker_errors:
            raise CommandError(
                "a worker process failed (logged above); "
                f"{self.total - done} of {self.total} tenants not attempted"
            ) from self.worker_errors[0]
        if self.failures:
            names = ", ".join(name for name, _ in self.failures)
            hint = (
                ""
                if self.keep_going or done == self.total
                else " (stopped at the first failure; -x continue=true goes on)"
            )
            if self.stopped_at:
                hint += f"; rollout stopped at {self.stopped_at}"
            raise CommandError(
                f"{len(self.failures)} of {self.total} tenants failed: {names}"
                f"{hint}; each failure is logged above"
            ) from self.failures[0][1]


def failure_cause(exc: BaseException) -> str:
    """A failure's one-line cause, as records and reports keep it."""
    cause = (
        str(exc) if isinstance(exc, CommandError) else f"{type(exc).__name__}: {exc}"
    )
    return first_line(cause)


def shown_revisions(versions: Sequence[str] | frozenset[str]) -> str:
    """Versions as the lines show them: ``a1,b2``, or ``base`` for none."""
    return ",".join(sorted(versions)) or "base"


def diff_lines(
    upgrade_ops: ops.UpgradeOps, migration_context: MigrationContext
) -> list[str]:
    """What a comparison found, as the lines a revision's ``upgrade()`` would
    get (``op.add_column('items', sa.Column('note', ...))``); [] for nothing."""
    if upgrade_ops.is_empty():
        return []
    opts = migration_context.opts
    code = render_python_code(
        upgrade_ops,
        sqlalchemy_module_prefix=opts.get("sqlalchemy_module_prefix") or "sa.",
        alembic_module_prefix=opts.get("alembic_module_prefix") or "op.",
        render_as_batch=bool(opts.get("render_as_batch")),
        render_item=opts.get("render_item"),
        user_module_prefix=opts.get("user_module_prefix"),
        # the dialect's type rendering, without the env.py's script (whose
        # context would insist on comparing again)
        migration_context=MigrationContext.configure(dialect=migration_context.dialect),
    )
    kept = [line for line in code.splitlines() if not line.lstrip().startswith("#")]
    return textwrap.dedent("\n".join(kept)).strip().splitlines()


def _not_attempted(name: str, server: str | None) -> dict[str, Any]:
    keys = ("from", "to", "started", "seconds", "error")
    where = {"server": server} if server else {}
    return {"tenant": name, **where, "status": "not attempted", **dict.fromkeys(keys)}


def _split(revs: str) -> list[str]:
    return [] if revs == "base" else revs.split(",")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
