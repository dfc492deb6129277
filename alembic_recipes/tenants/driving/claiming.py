"""Driving a shared run: runners claim tenants (``-x shard=claim -x run=ID``).

Every runner of the run selects the tenants as usual; the first to come opens
the run (its tenants recorded ``pending``, then written to the claims, wave by
wave), the others join it.  Each then claims the next tenant of the lowest
unfinished rollout wave, migrates it like any fleet tenant (its own
transaction and lock), and marks it done, until no tenant is left: waiting,
when the last tenants of a wave are held by other runners, and taking over
those whose runner's lease ran out.  A wave starts only when every tenant of
the one before it is done, with at most ``max_failures`` failed; a failure
without ``continue_on_error`` stops the whole run.  Before it ends, a runner
reads the catalog again: tenants that joined it meanwhile are added and run.

A runner stopped (SIGTERM, Ctrl-C) gives back the tenant it held, rolled
back: another runner takes it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from alembic.util import CommandError

from ...database.stopping import check, pause, requested
from ...logs import logger_for
from ..model.settings import TenantSettings
from ..records.outcomes import INTERRUPTED
from ..records.record import NEEDS_REPAIR, NOT_ATTEMPTED, UNREACHABLE, record_location
from ..running.interface import TenantStrategy
from ..selection.selection import resolve
from .claims import Claim, Claims
from .fleet import Fleet

__all__ = ["claims_for", "run_claiming"]

log = logger_for(__name__)

_FAILED = ("failed", NEEDS_REPAIR, UNREACHABLE)
_POLL = 0.5
"""Seconds between looks at a wave whose last tenants other runners hold."""


def claims_for(settings: TenantSettings) -> Claims:
    """The claims of the run *settings* name, beside its run record."""
    assert settings.run_id is not None
    if settings.servers:  # one run across the servers: claims in the catalog
        if settings.tenants_url is None:
            raise CommandError(
                "-x shard=claim over servers keeps its claims in the catalog that"
                " places the tenants: set tenants_url (and tenants_query); or start"
                " the runners of each server with -x server=NAME and a run id of"
                " its own"
            )
        where, schema = settings.tenants_url, None
    elif settings.strategy == "schema":
        url = settings.url
        if url is None:
            raise CommandError(
                "-x shard=claim opens connections of its own: it needs"
                " sqlalchemy.url, not only a connection in config.attributes"
            )
        where, schema = url.render_as_string(hide_password=False), settings.shared
    else:
        found, schema = record_location(settings)
        if found is None:
            raise CommandError(
                "-x shard=claim keeps its claims beside the run record, and"
                " this environment has no place for one: set tenants_url or"
                " shared_scope"
            )
        where = found
    return Claims(where, schema, settings.run_id, lease=settings.claim_lease)


def run_claiming(strategy: TenantStrategy) -> None:
    """Run this runner's part of a shared run, in this process."""
    fleet = Fleet(strategy.run)
    claims = claims_for(fleet.settings)

    def each() -> None:
        fleet.run_to_its_end(lambda: _Runner(fleet, strategy, claims).run())

    try:
        with claims:
            strategy.on_connection(each)
    finally:
        fleet.report.progress.close()


class _Runner:
    """One runner's loop over the claims of its run."""

    def __init__(self, fleet: Fleet, strategy: TenantStrategy, claims: Claims) -> None:
        self.strategy = strategy
        self.fleet = fleet
        self.claims = claims
        self.names: list[str] = []
        self._waited_on: int | None = None
        self._checked_wave = 1
        self.count = 1
        """How many rollout waves the run has."""

    def run(self) -> None:
        if self._join():
            self._loop()
            log.info("Run %s: %s", self.claims.run_id, self._summary())

    def _join(self) -> bool:
        """Select this runner's tenants and join the run (opening it, when
        first); False when the run had finished before this runner came."""
        fleet, claims = self.fleet, self.claims
        self.names = self.strategy.select()
        journal = fleet.journal
        journal.active = fleet.run.records
        journal.shared_run = True
        journal.run_id = claims.run_id
        waves = [(w.number, w.spec, w.names) for w in fleet.waves.of(self.names)]
        joined = claims.join(waves, self._record)
        fleet.report.claiming(joined.total)
        if not joined.opened:
            journal.join()
        if joined.finished:
            log.info(
                "Run %s finished before this runner started: nothing to do (%s)",
                claims.run_id,
                self._summary(),
            )
            return False
        added = joined.added and not joined.opened
        log.info(
            "Run %s: %s, %d tenant%s (runner %s)%s",
            claims.run_id,
            "opened" if joined.opened else "joined",
            joined.total,
            "" if joined.total == 1 else "s",
            claims.runner,
            f"; added {len(joined.added)} that joined the catalog" if added else "",
        )
        self.count = claims.waves()
        return True

    def _loop(self) -> None:
        """Claim tenant after tenant until none is left to claim, waiting
        for a wave whose last tenants other runners hold."""
        claims = self.claims
        finished: tuple[str, str] | None = None
        try:
            while True:
                check()  # a stop: no tenant starts after it
                claim, finished = claims.claim(finished), None
                if claim is None:
                    if not self._more_to_come():
                        break
                    continue
                if claim.wave > self._checked_wave and not self._wave_may_start(claim):
                    continue
                finished = self._run(claim)
                if finished is None:
                    break
        finally:
            if finished is not None:  # this runner's last: done
                claims.done(*finished)

    def _more_to_come(self) -> bool:
        """Nothing to claim now: True after waiting for the other runners'
        wave, or when tenants joined the catalog; False: the run is done."""
        wave = self.claims.next_wave()
        if wave is not None:
            self._wait(wave)
            return True
        return not self.fleet.report.stopped_at and self._catalog_grew()

    # -- one tenant --------------------------------------------------------------
    def _run(self, claim: Claim) -> tuple[str, str] | None:
        """Migrate the claimed tenant: ``(name, status)``, to mark done with
        the next claim; None to stop this runner (its tenant given back when
        the stop rolled it back)."""
        fleet, name = self.fleet, claim.tenant
        if claim.taken_from:
            log.warning(
                "%s taken over from runner %s, whose claim ran out (claim_lease)",
                fleet.report.prefix(claim.position, name),
                claim.taken_from,
            )
        if name not in self.names:  # another runner added it: read it first
            self._learn([name])
        fleet.report.claimed(name)
        work = partial(self.strategy.one, name)
        going = fleet.run_one(claim.position, name, work, self.strategy.verify)
        if fleet.deferred:  # a lock timeout: retried here, the others go on
            fleet.run_deferred(
                lambda n: partial(self.strategy.one, n), self.strategy.verify
            )
        status = fleet.report.status_of(name)
        if status is None or (status == INTERRUPTED and requested() is not None):
            self.claims.release(name)  # rolled back: another runner takes it
            return None
        if status in _FAILED and not self._goes_on_after_failure():
            self.claims.done(name, status)
            self._stop_run(f"{name} failed (-x continue=true goes on)")
            return None
        if not going and status not in _FAILED:
            self.claims.done(name, status)
            return None
        return name, status

    def _goes_on_after_failure(self) -> bool:
        """After a failed tenant: ``continue_on_error``, or a rollout whose
        waves may have ``max_failures`` failed tenants each."""
        settings = self.fleet.settings
        return settings.keep_going or bool(settings.rollout and settings.max_failures)

    # -- waves -------------------------------------------------------------------
    def _wave_may_start(self, claim: Claim) -> bool:
        """*claim* is the first of its wave here: True when the wave before
        it had at most ``max_failures`` failed tenants; else the claim is
        given back and the rest is not attempted."""
        wave = claim.wave
        before = wave - 1
        failed = self.claims.failed_in(before, _FAILED)
        label = f"wave {before} of {self.count} ({self.claims.wave_spec(before)})"
        self._checked_wave = wave
        if failed <= self.fleet.settings.max_failures:
            log.info("Rollout: %s done across the runners: %d failed", label, failed)
            return True
        self.claims.release(claim.tenant)
        self.fleet.waves.stop(label, failed)
        self.fleet.journal.not_attempted(self.claims.skip_from(wave, NOT_ATTEMPTED))
        return False

    def _stop_run(self, why: str) -> None:
        """Stop the whole run: no runner starts another of its tenants."""
        skipped = self.claims.skip_from(1, NOT_ATTEMPTED)
        if skipped:
            log.warning(
                "Run %s stops: %s; %d tenant%s not attempted",
                self.claims.run_id,
                why,
                len(skipped),
                "" if len(skipped) == 1 else "s",
            )
        self.fleet.journal.not_attempted(skipped)

    def _wait(self, wave: int) -> None:
        if self._waited_on != wave:
            self._waited_on = wave
            log.info(
                "Waiting for the other runners: the last tenants of wave %d are theirs",
                wave,
            )
        pause(_POLL)

    # -- the catalog -------------------------------------------------------------
    def _catalog_grew(self) -> bool:
        """Read the known tenants again; add those that joined meanwhile."""
        settings = self.fleet.settings
        if not settings.needs_known:
            return False
        names = resolve(settings.selectors, settings.excluded, self.strategy.known())
        have = set(self.names)
        new = [name for name in names if name not in have]
        if not new:
            return False
        added = self.claims.add(new, self._record)
        self._learn(new)
        if not added:
            return False
        log.info(
            "Run %s: %d tenant%s joined the catalog: %s",
            self.claims.run_id,
            len(added),
            "" if len(added) == 1 else "s",
            ", ".join(added[:5]) + (", ..." if len(added) > 5 else ""),
        )
        return True

    def _learn(self, names: Sequence[str]) -> None:
        """*names* joined the run after this runner selected its tenants:
        read what the strategy needs of them (and whether they are listed,
        so that they may be created)."""
        have = set(self.names)
        self.names += [name for name in names if name not in have]
        self.fleet.report.total = max(self.fleet.report.total, len(self.names))
        self.fleet.run.selection.forget_listed()
        self.strategy.take(self.names)

    def _record(self, names: Sequence[str]) -> None:
        """Record the intent of *names*, joining the run now."""
        self.fleet.journal.begin(names, self.strategy.at_head)

    def _summary(self) -> str:
        outcomes, left, runners = self.claims.summary()
        parts = [f"{count} {status}" for status, count in outcomes.most_common()]
        total = sum(outcomes.values()) + left
        text = (
            f"{total} tenant{'' if total == 1 else 's'}, {runners}"
            f" runner{'' if runners == 1 else 's'}: {', '.join(parts) or 'none done'}"
        )
        return text + (f"; {left} left to the other runners" if left else "")
