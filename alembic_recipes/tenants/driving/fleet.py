"""Running a fleet's tenants one by one: each tenant's outcome, retries, stops.

A :class:`Fleet` runs tenant after tenant of a :class:`~.run.Run`: one line
each, a lock timeout put aside to run again after the others, a failure
stopping the run unless ``continue_on_error``.  A run over exactly one tenant
lets that tenant's exception through unchanged, as stock Alembic would.

A stop (SIGTERM, Ctrl-C: :mod:`~alembic_recipes.database.stopping`) ends the tenant
running -- its statement cancelled, its transaction rolled back -- and the
run; what became of that tenant is read back from its database before it is
reported, never assumed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from alembic.util import CommandError

from ...alembic_internals import configured
from ...database.errors import connection_lost, first_line
from ...database.retries import LockTimeout, backoff, lock_timeout_of
from ...database.stopping import finishing, pause, requested, signal_name, stopped_by
from ...logs import logger_for
from ..records.outcomes import MIGRATED_ELSEWHERE, Outcome
from ..records.repair import NeedsRepair
from ..running.run import Run
from .waves import Waves

__all__ = ["MIGRATED_ELSEWHERE", "Fleet", "Outcome", "Verify", "Work"]

Work = Callable[[], Outcome]
_CONCURRENTLY = re.compile(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY", re.I)
Verify = Callable[[str], tuple[list[str] | None, list[str] | None]]
"""A tenant's versions when its run started, as far as known, and read afresh
now (None: not known; its schema or database is missing)."""
log = logger_for(__name__)


class Fleet:
    """Runs the tenants of one :class:`~.run.Run`, one at a time."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.settings = run.settings
        self.report = run.report
        self.journal = run.journal
        self.waves = Waves(run)
        self.deferred: list[tuple[int, str]] = []
        """``(index, name)`` of tenants to run again after a lock timeout."""
        self._attempts: dict[str, int] = {}
        self._timed_out: dict[str, Exception] = {}
        """Each deferred tenant's last lock timeout."""

    def run_to_its_end(self, run: Callable[[], None]) -> None:
        """Call *run*, the tenants' part; a stop (SIGTERM, Ctrl-C: whatever
        it raised) ends it as an interruption.  Then the run's last part,
        which a second signal does not cut short: the progress display
        closed, the record's tenants not reached marked."""
        try:
            run()
        except (Exception, KeyboardInterrupt) as exc:
            if not stopped_by(exc):
                raise
            self.report.interrupt(requested())
        with finishing():
            if self.deferred:
                signum = requested()
                self.abandon_deferred(
                    f"the run was stopped by {signal_name(signum)}"
                    if signum is not None
                    else "the run stopped at an earlier failure"
                )
            self.report.progress.close()
            self.journal.finish()

    def run_one(
        self, index: int, name: str, work: Work, verify: Verify | None = None
    ) -> bool:
        """Run *work* for tenant *name*; log one line; False to stop the fleet.

        A lock timeout puts the tenant aside (:attr:`deferred`) to run again
        after the others, ``lock_retries`` times; then it fails naming who
        held the lock (:class:`~alembic_recipes.database.retries.LockTimeout`).  A stop
        (SIGTERM, Ctrl-C) reads the tenant's versions again (*verify*) and
        reports what its database says."""
        started = time.perf_counter()
        self.journal.start(name)
        try:
            with self.run.labelled_stdout(name):
                result = work()
        except KeyboardInterrupt:  # a second Ctrl-C, or a stop that hung
            self.stopped_on(index, name, verify, time.perf_counter() - started)
            return False
        except Exception as exc:
            if requested() is not None and not isinstance(exc, NeedsRepair):
                seconds = time.perf_counter() - started  # the stop, in the
                self.stopped_on(index, name, verify, seconds)  # driver's words
                return False
            self._environment_error(exc)
            failure = self._failure_of(index, name, exc)
            if failure is None:
                return True  # deferred
            if self.report.total == 1:
                if failure is exc:
                    raise  # one tenant: its error, unchanged, as stock Alembic
                raise failure from exc
            seconds = time.perf_counter() - started
            self.report.record_failure(index, name, failure, seconds)
            return self.settings.keep_going or self.run.checks_fleet
        seconds = time.perf_counter() - started
        diff = self.run.differences.pop(name, None)
        self.report.record(index, name, result, seconds, diff=diff)
        return True

    def stopped_on(
        self, index: int, name: str, verify: Verify | None, seconds: float
    ) -> None:
        """The run stopped while tenant *name* ran: read its versions again
        (*verify*) and report what its database says -- done, when its commit
        got through first; stopped part-way, when an ``autocommit_block()``
        had committed some of it; else rolled back."""
        self.report.interrupt(requested())
        before: list[str] | None = None
        now: list[str] | None = None
        if verify is not None and self.run.targets:
            try:
                before, now = verify(name)
            except Exception as exc:
                log.warning(
                    "%s could not read its version after the stop: %s",
                    self.report.prefix(index, name),
                    first_line(exc),
                )
        if now is not None and frozenset(now) == self.run.reached:
            self.report.record_committed(index, name, now, seconds)
            self.journal.committed(name, now)
            return
        if now is not None and before is not None and sorted(now) != sorted(before):
            self.report.record_interrupted(name, seconds, at=now)
            return
        self.report.record_interrupted(name, seconds)

    def _environment_error(self, exc: Exception) -> None:
        """Autogenerate without models is env.py's error, not each tenant's:
        raise it once, before the next tenant meets it too."""
        if not self.run.autogenerates or not isinstance(exc, CommandError):
            return
        opts = configured("target_metadata")  # {}: env.py did not get so far
        if opts and opts["target_metadata"] is None:
            raise CommandError(
                f"alembic {self.run.command} compares your models with each tenant, and"
                " env.py gives no models: set target_metadata to your MetaData"
                " (where env.py says 'add your model's MetaData object here')"
            ) from exc

    def _failure_of(self, index: int, name: str, exc: Exception) -> Exception | None:
        """*exc*, a one-line error for it (a :class:`LockTimeout`, a lost
        connection), or None when the tenant was put aside to run again."""
        lost = connection_lost(exc)
        if lost is not None:
            failure: Exception = CommandError(f"{name}: {lost}")
            failure.__cause__ = exc
            return failure
        timeout = lock_timeout_of(exc)
        if timeout is None or isinstance(exc, CommandError):
            return exc  # ours (a LockTimeout, a repair to make) is final
        attempts = self._attempts.get(name, 0) + 1
        self._attempts[name] = attempts
        if attempts > self.settings.lock_retries:
            failure = LockTimeout(name, timeout, attempts)
            failure.__cause__ = exc
            return failure
        prefix = self.report.prefix(index, name)
        undone = (
            "its INVALID index is built again when it"  # online_ddl does that
            if _CONCURRENTLY.match(timeout.statement)
            else "rolled back,"
        )
        log.warning(
            "%s %s; %s runs again after the other tenants (retry %d of %d)",
            prefix,
            timeout.describe(),
            undone,
            attempts,
            self.settings.lock_retries,
        )
        self.deferred.append((index, name))
        self._timed_out[name] = exc
        return None

    def abandon_deferred(self, why: str) -> None:
        """The run ends with tenants still put aside after a lock timeout:
        each fails with that timeout, not run again (*why*)."""
        for index, name in self.deferred:
            exc = self._timed_out[name]
            timeout = lock_timeout_of(exc)
            assert timeout is not None
            failure = LockTimeout(name, timeout, self._attempts[name], why_not=why)
            failure.__cause__ = exc
            self.report.record_failure(index, name, failure, 0.0)
        self.deferred.clear()

    def run_deferred(
        self, work_for: Callable[[str], Work], verify: Verify | None = None
    ) -> None:
        """Run the tenants put aside after lock timeouts again, each after a
        pause that grows with its attempts (cut short by a stop), until none
        is left."""
        while self.deferred:
            batch, self.deferred = self.deferred, []
            pause(backoff(max(self._attempts[name] for _, name in batch)))
            for position, (index, name) in enumerate(batch):
                if not self.run_one(index, name, work_for(name), verify):
                    self.deferred[:0] = batch[position + 1 :]  # not run again
                    return
