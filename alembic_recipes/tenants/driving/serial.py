"""Running a strategy's tenants in this process: one after the other, or a plan.

:func:`run_serially` and :func:`run_plan` run tenants here (:mod:`.parallel`:
in worker processes; :mod:`.claiming`: claimed from runners sharing a run).
"""

from __future__ import annotations

from functools import partial

from ...database.stopping import check
from ..running.interface import TenantStrategy
from .fleet import Fleet
from .plan import Plan
from .waves import Waves

__all__ = ["choose", "run_plan", "run_serially"]


def choose(strategy: TenantStrategy) -> list[str]:
    """The tenants of this run; its intent recorded (inside the strategy's
    :meth:`~.interface.TenantStrategy.on_connection`)."""
    names = strategy.select()
    strategy.run.begin_record(names, strategy.at_head)
    return names


def run_serially(strategy: TenantStrategy) -> None:
    """Run every selected tenant in this process, one after the other, wave
    after wave (``rollout``); a stop (SIGTERM, Ctrl-C) ends the run after
    the tenant it stopped."""
    fleet = Fleet(strategy.run)

    def each() -> None:
        fleet.run_to_its_end(lambda: _waves(fleet, strategy, choose(strategy)))

    try:
        strategy.on_connection(each)
    finally:  # the bar down, the log level back (before the summary)
        fleet.report.progress.close()


def _waves(fleet: Fleet, strategy: TenantStrategy, names: list[str]) -> None:
    position = {name: index for index, name in enumerate(names, 1)}
    waves = fleet.waves.of(names)
    for wave in waves:
        fleet.waves.starts(wave, len(waves))
        failures = len(fleet.report.failures)
        stopped = False
        for name in wave.names:
            check()  # a stop: no tenant starts after it
            work = partial(strategy.one, name)
            if fleet.run_one(position[name], name, work, strategy.verify):
                continue
            if fleet.waves.must_stop(failures):
                stopped = True
                break
        else:
            fleet.run_deferred(
                lambda name: partial(strategy.one, name), strategy.verify
            )
        if not fleet.waves.done(wave, len(waves), failures, stopped):
            break


def run_plan(strategy: TenantStrategy) -> None:
    """``-x plan=true``: one line per selected tenant -- its revision and what
    the command would run -- and a summary; nothing is locked or changed."""
    run = strategy.run
    plan, waves_of = Plan(run), Waves(run)

    def each() -> None:
        names = strategy.select()
        waves = waves_of.of(names)  # a wave naming no tenant fails here too
        if len(waves) > 1:
            waves_of.plan(waves)
        for index, name in enumerate(names, 1):
            plan.one(index, name, strategy.current(name))
        run.report.progress.close()
        plan.finish()

    try:
        strategy.on_connection(each)
    finally:
        run.report.progress.close()
