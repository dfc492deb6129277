"""The end of a fleet run: the summary lines, the record file, the final error."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from alembic.util import CommandError

from ...database.stopping import Interrupted, signal_name
from ...logs import logger_for
from .outcomes import (
    DIFFERS,
    INTERRUPTED,
    iso_time,
    not_attempted,
    shown_revisions,
    split_revisions,
)
from .progress import Progress
from .report_file import ReportFile

__all__ = ["Summary"]

log = logger_for("alembic_recipes.tenants.records.report")  # the run's lines


class Summary:
    """What :class:`~.report.Report` does when the run ends (the attributes
    below are the report's)."""

    command: str
    shared: bool
    total: int
    names: list[str]
    entries: dict[str, dict[str, Any]]
    outcomes: dict[str, list[str]]
    failures: list[tuple[str, Exception]]
    interrupted: list[str]
    part_way: list[str]
    was_interrupted: bool
    signum: int | None
    worker_errors: list[Exception]
    unfinished: list[str] | None
    servers: dict[str, str]
    claims: bool
    stopped_at: str | None
    keep_going: bool
    heads: frozenset[str]
    steps: Callable[[Sequence[str], Sequence[str]], int]
    progress: Progress
    file: ReportFile | None
    path: str | None
    started: float

    @property
    def done(self) -> int:
        """Tenants with an outcome so far."""
        return sum(len(v) for v in self.outcomes.values())

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
        log.info("Tenants: %d total: %s", self.total, self._summary(done))
        self._per_server()
        if self.command == "current":
            self._histogram()
        self.write()
        self._raise_for_differences()
        self._raise_for_failures(done)

    def _summary(self, done: int) -> str:
        """The summary line's counts: per status, not attempted, where a
        rollout stopped."""
        parts = [f"{len(v)} {k}" for k, v in self.outcomes.items()]
        if done < self.total:
            parts.append(f"{self.total - done} not attempted")
        if self.stopped_at:
            parts.append(f"rollout stopped at {self.stopped_at}")
        return ", ".join(parts) or "none"

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
                behind = self.steps(split_revisions(revision), sorted(self.heads))
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
            self.entries.get(name) or not_attempted(name, self.servers.get(name))
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
            "started": iso_time(self.started),
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
