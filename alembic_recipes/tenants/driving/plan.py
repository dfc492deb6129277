"""``-x plan=true``: what a command would do to each tenant, changing nothing."""

from __future__ import annotations

from ...logs import logger_for
from ..records.outcomes import shown_revisions
from ..running.run import Run

__all__ = ["Plan"]

log = logger_for(__name__)


class Plan:
    """The plan of one :class:`~.run.Run`: a line per tenant, then a summary."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.report = run.report
        self._planned: dict[str, list[str]] = {}

    def one(self, index: int, name: str, before: list[str] | None) -> None:
        """Log what this command would do to tenant *name* (at *before*; None:
        missing), changing nothing."""
        prefix = self.report.prefix(index, name)
        targets = list(self.run.targets)
        if before is None:
            if self.run.command != "upgrade" or not self.run.selection.may_create(name):
                state = "missing: would fail (not created: create_tenants)"
                self._planned.setdefault("would fail", []).append(name)
                log.info("%s %s", prefix, state)
                return
            before = []
            created = "missing: would be created, then "
        else:
            created = ""
        steps = self.run.steps(before, targets) if targets else 0
        if not steps:
            self._planned.setdefault("nothing to run", []).append(name)
            log.info("%s %s: nothing to run", prefix, shown_revisions(before))
            return
        verb = {"upgrade": "upgrade", "downgrade": "downgrade"}.get(self.run.command)
        self._planned.setdefault(f"would {verb or self.run.command}", []).append(name)
        log.info(
            "%s %s%s -> %s: would %s %d revision%s",
            prefix,
            created,
            shown_revisions(before),
            shown_revisions(targets),
            verb or self.run.command,
            steps,
            "" if steps == 1 else "s",
        )

    def finish(self) -> None:
        """The plan's summary line."""
        parts = [f"{len(v)} {k}" for k, v in self._planned.items()]
        log.info(
            "Plan: %d tenants: %s; nothing was changed",
            self.report.total,
            ", ".join(parts) or "none",
        )
