"""A fleet run's rollout waves as the drivers go through them.

The waves come from ``rollout`` (:func:`~.rollout.waves_of`); a wave starts
only when the one before it finished with at most ``max_failures`` failed
tenants, and the log and the summary say where a rollout stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...logs import logger_for
from ..model.rollout import Wave, waves_of
from ..running.run import Run

__all__ = ["Waves"]

log = logger_for(__name__)


class Waves:
    """The waves of one :class:`~.run.Run`."""

    def __init__(self, run: Run) -> None:
        self.settings = run.settings
        self.report = run.report

    def of(self, names: Sequence[str]) -> list[Wave]:
        """The waves of this run (``rollout``; one wave without it)."""
        settings = self.settings
        part = (
            "a shard"
            if settings.shard is not None
            else "a resume"
            if settings.resumes
            else None
        )
        return waves_of(settings.rollout, names, part=part)

    def plan(self, waves: Sequence[Wave]) -> None:
        """The plan's line on the rollout: each wave and its tenants' count."""
        log.info(
            "Plan: rollout in %d waves: %s",
            len(waves),
            "; ".join(
                f"{wave.label(len(waves))}: {len(wave.names)} tenant"
                f"{'' if len(wave.names) == 1 else 's'}"
                for wave in waves
            ),
        )

    def starts(self, wave: Wave, count: int) -> None:
        """*wave* (one of *count*) begins: the progress display says so."""
        if count > 1:
            self.report.progress.in_wave(wave.label(count))

    def must_stop(self, failures_before: int) -> bool:
        """After a tenant asked to stop: True unless a rollout wave may still
        have failures (``max_failures``) and the run was not interrupted."""
        if self.report.was_interrupted or not self.settings.rollout:
            return True
        failed = len(self.report.failures) - failures_before
        return failed > self.settings.max_failures

    def done(self, wave: Wave, count: int, failures_before: int, stopped: bool) -> bool:
        """Log the end of *wave* (one of *count*); False when the later waves
        must not start: the wave stopped, or had more than ``max_failures``
        failed tenants."""
        if count == 1 or self.report.was_interrupted:
            return not stopped
        failed = len(self.report.failures) - failures_before
        label = wave.label(count)
        if stopped or failed > self.settings.max_failures:
            self.stop(label, failed)
            return False
        log.info(
            "Rollout: %s done: %d tenant%s, %d failed",
            label,
            len(wave.names),
            "" if len(wave.names) == 1 else "s",
            failed,
        )
        return True

    def stop(self, label: str, failed: int) -> None:
        """Rollout wave *label* had *failed* tenants, too many: the later
        waves are not attempted (the summary says where it stopped)."""
        self.report.stopped_at = label
        log.warning(
            "Rollout: %s had %d failed tenant%s (max_failures = %d): the later"
            " waves are not attempted",
            label,
            failed,
            "" if failed == 1 else "s",
            self.settings.max_failures,
        )
