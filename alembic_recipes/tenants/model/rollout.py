"""Staged rollout: a fleet run in ordered waves, canary first.

``rollout = acme, beta; 10%; rest`` (or ``-x rollout=...``): waves separated
by ``;``, each a selection over the run's tenants (names and shell-style
patterns, as ``-x tenant`` takes them), a percentage of the tenants not yet in
a wave (rounded up, in selection order), or ``rest``.  Tenants no wave names
form a last wave.  A wave starts only when the one before it finished with at
most ``max_failures`` failed tenants (default 0); otherwise the later waves are
not attempted, and the summary and the run record say which wave stopped the
run.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from alembic.util import CommandError

from ...configuration.options import InvalidOption
from ...logs import logger_for
from .names import is_pattern, validate_selector

__all__ = ["Wave", "parse_rollout", "waves_of"]

log = logger_for(__name__)
_PERCENT = re.compile(r"(\d{1,3})%")
REST = "rest"


@dataclass(frozen=True)
class Wave:
    """One wave: its number, its spec as written, and its tenants."""

    number: int
    spec: str
    names: tuple[str, ...]

    def label(self, count: int) -> str:
        return f"wave {self.number} of {count} ({self.spec})"


def parse_rollout(value: str, source: str) -> tuple[str, ...]:
    """The waves of *value*, checked (``InvalidOption`` naming a bad one)."""
    accepted = (
        "waves separated by ';', each tenant names/patterns separated by ',',"
        " a percentage such as 10%, or rest (last)"
    )
    specs = tuple(part.strip() for part in value.split(";"))
    for position, spec in enumerate(specs, 1):
        if not spec:
            raise InvalidOption.expected(value, source, accepted)
        if spec == REST:
            if position != len(specs):
                raise InvalidOption(f"invalid {source} {value!r}: 'rest' must be last")
            continue
        percent = _PERCENT.fullmatch(spec)
        if percent is not None:
            if not 1 <= int(percent[1]) <= 100:
                raise InvalidOption.expected(
                    spec, source, "a percentage from 1% to 100%"
                )
            continue
        for item in spec.split(","):
            if item.strip().startswith("!"):
                raise InvalidOption.expected(spec, source, accepted)
            validate_selector(item.strip(), source=source)
    return specs


def waves_of(
    specs: Sequence[str], names: Sequence[str], *, part: str | None = None
) -> list[Wave]:
    """*names* (the run's tenants, in order) split into the waves of *specs*;
    the tenants left over form a last wave.  No specs: one wave of all.

    A wave's name or pattern that matches none of *names* is an error --
    unless the run is *part* of the fleet (``"a shard"``, ``"a resume"``):
    then that tenant is another run's, and its wave is empty, said once."""
    left = list(names)
    waves: list[Wave] = []
    for number, spec in enumerate(specs, 1):
        chosen = _chosen(number, spec, left, part)
        waves.append(Wave(number, spec, tuple(chosen)))
        taken = set(chosen)
        left = [n for n in left if n not in taken]
    if left:
        waves.append(Wave(len(waves) + 1, REST, tuple(left)))
    return [wave for wave in waves if wave.names] or [Wave(1, REST, ())]


def _chosen(number: int, spec: str, left: list[str], part: str | None) -> list[str]:
    """The tenants of wave *number* (*spec*) among those *left*, in order."""
    if spec == REST:
        return list(left)
    if (percent := _PERCENT.fullmatch(spec)) is not None:
        return left[: math.ceil(len(left) * int(percent[1]) / 100)]
    chosen: list[str] = []
    for item in (i.strip() for i in spec.split(",")):
        found = _matching(item, left)
        if not found and part is not None:
            log.info(
                "rollout wave %d (%s): %r is not among the tenants of this"
                " run (%s): that wave is empty here",
                number,
                spec,
                item,
                part,
            )
        elif not found:
            raise CommandError(
                f"rollout wave {number} ({spec}): {item!r} matches"
                " none of the tenants of this run not in an earlier wave"
            )
        chosen += [n for n in found if n not in chosen]
    return chosen


def _matching(item: str, names: list[str]) -> list[str]:
    """The *names* a wave's *item* (a name, or a pattern) stands for."""
    if is_pattern(item):
        return [n for n in names if fnmatch.fnmatchcase(n, item)]
    return [n for n in names if n == item]
