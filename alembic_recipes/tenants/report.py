"""What one fleet run says: a line per tenant, failures in full, the summary.

Every tenant logs one line through Alembic's logging (``[3/200] acme:
upgraded base -> 3f2a9c (5 revisions) in 35 ms``), the run ends with one
summary line, and fails when a tenant failed.  A fleet logs each failure
once, in full (traceback and SQL), and its final error is chained to the
first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic.util import CommandError

from ..logs import logger_for
from .selection import AUTOGENERATE_COMMANDS

__all__ = ["MIGRATED_ELSEWHERE", "Outcome", "Report"]

log = logger_for(__name__)

MIGRATED_ELSEWHERE = "migrated by another run meanwhile"
Outcome = tuple[Sequence[str], Sequence[str]] | str | None
"""One tenant's result: ``(versions before, versions after)``; None when the
batched read found it at head; :data:`MIGRATED_ELSEWHERE` when it was found at
head once locked."""

_VERBS = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}


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
    ) -> None:
        self.command = command
        self.heads = heads
        self.steps = steps
        """How many revisions lie between two sets of versions."""
        self.shared = shared
        self.keep_going = keep_going
        self.total = 0
        self.outcomes: dict[str, list[str]] = {}
        self.failures: list[tuple[str, Exception]] = []
        self.interrupted: list[str] = []
        """Tenants a worker was on when interrupted (rolled back)."""
        self.was_interrupted = False
        self.worker_errors: list[Exception] = []

    @property
    def done(self) -> int:
        """Tenants with an outcome so far."""
        return sum(len(v) for v in self.outcomes.values())

    def record(self, index: int, name: str, result: Outcome, seconds: float) -> None:
        """Log tenant *name*'s line (the *index*-th done) and count its outcome."""
        if self.command not in AUTOGENERATE_COMMANDS:
            prefix = (
                f"shared scope {name}:"
                if self.shared
                else f"[{index}/{self.total}] {name}:"
            )
            self._line(prefix, name, result, seconds)

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
        prefix = f"[{index}/{self.total}] {name}:"
        ms = seconds * 1000
        if text is not None:
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, text)
        elif isinstance(exc, CommandError):
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, exc)
        else:
            log.error(
                "%s FAILED after %.0f ms: %s", prefix, ms, type(exc).__name__,
                exc_info=exc,
            )  # fmt: skip
        self.outcomes.setdefault("failed", []).append(name)
        self.failures.append((name, exc))

    def record_interrupted(self, name: str) -> None:
        """A worker was stopped on tenant *name* (its transaction rolled back)."""
        self.interrupted.append(name)
        self.interrupt()

    def interrupt(self) -> None:
        """The run was stopped (Ctrl-C, SIGTERM): the rest is not attempted."""
        self.was_interrupted = True

    def record_worker_error(self, exc: Exception) -> None:
        """A worker process failed outside any tenant (e.g. could not connect)."""
        self.worker_errors.append(exc)

    def _line(self, prefix: str, name: str, result: Outcome, seconds: float) -> None:
        if result is None or isinstance(result, str):
            extra = f"; {result}" if result else ""
            log.info("%s already at head (%s%s)", prefix, _revs(self.heads), extra)
            self.outcomes.setdefault("already at head", []).append(name)
            return
        before, after = result
        if self.command == "current":
            state = "at head" if frozenset(after) == self.heads else "behind head"
            log.info("%s %s (%s)", prefix, _revs(after), state)
            self.outcomes.setdefault(state, []).append(name)
        elif tuple(before) == tuple(after):
            ms = seconds * 1000
            log.info("%s %s, nothing to do (%.0f ms)", prefix, _revs(after), ms)
            self.outcomes.setdefault("unchanged", []).append(name)
        else:
            verb = _VERBS.get(self.command, self.command or "ran")
            steps = self.steps(before, after)
            log.info(
                "%s %s %s -> %s (%d revision%s) in %.0f ms",
                prefix,
                verb,
                _revs(before),
                _revs(after),
                steps,
                "" if steps == 1 else "s",
                seconds * 1000,
            )
            self.outcomes.setdefault(verb, []).append(name)

    def finish(self) -> None:
        """Log the summary; raise (non-zero exit) if any tenant failed."""
        if self.command in AUTOGENERATE_COMMANDS or self.shared:
            return
        if self.interrupted:
            self.outcomes["interrupted (rolled back)"] = self.interrupted
        done = self.done
        parts = [f"{len(v)} {k}" for k, v in self.outcomes.items()]
        if done < self.total:
            parts.append(f"{self.total - done} not attempted")
        log.info("Tenants: %d total: %s", self.total, ", ".join(parts) or "none")
        self._raise_for_failures(done)

    def _raise_for_failures(self, done: int) -> None:
        if self.was_interrupted:
            raise CommandError(
                f"interrupted: {self.total - done} of {self.total} tenants not"
                " attempted; each tenant that ran was committed or rolled back whole"
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
            raise CommandError(
                f"{len(self.failures)} of {self.total} tenants failed: {names}"
                f"{hint}; each failure is logged above"
            ) from self.failures[0][1]


def _revs(versions: Sequence[str] | frozenset[str]) -> str:
    return ",".join(sorted(versions)) or "base"
