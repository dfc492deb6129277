"""What ``-x tenant=failed`` selects from a run record, and what it misses.

:func:`to_resume` reads the unfinished rows and the tenants whose version is
not the target their row records; :func:`shard_gaps` finds the tenants that
``-x shard=K/N`` runs left out (a shard that never ran, shards of different
counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ...logs import logger_for
from ..selection.selection import in_shard
from .outcomes import shown_revisions
from .record import Row

__all__ = ["shard_gaps", "to_resume"]

log = logger_for(__name__)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _latest_sharded(rows: Sequence[Row]) -> tuple[str, set[tuple[int, int]]] | None:
    """The latest target of *rows*' sharded runs, and the shards ``(K, N)``
    that ran to it; None: no sharded run."""
    sharded = [row for row in rows if row.shard and row.target]
    if not sharded:
        return None
    target = str(max(sharded, key=lambda row: row.updated or _EARLIEST).target)
    shards = {_shard(row) for row in sharded if row.target == target}
    return target, shards


def _shard(row: Row) -> tuple[int, int]:
    k, n = str(row.shard).split("/")
    return int(k), int(n)


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def shard_gaps(rows: Sequence[Row], known: Sequence[str]) -> list[str]:
    """Check the ``-x shard=K/N`` runs of *rows*' latest target: shards of
    different N (their slices overlap and leave tenants out), or shards no
    run took (their tenants never migrated) -- a warning naming them; the
    *known* tenants that no run of that target reached."""
    latest = _latest_sharded(rows)
    if latest is None:
        return []
    target, shards = latest
    reached = {row.tenant for row in rows if row.target == target}
    left = [name for name in known if name not in reached]
    counts = sorted({n for _, n in shards})
    if not left:  # every known tenant reached (by these runs, or since)
        return []
    if len(counts) > 1:
        log.warning(
            "the sharded runs to %s used different shard counts (%s): their"
            " slices overlap and leave tenants out; %d known tenant%s no run to it"
            " reached (run every shard of one count, or -x shard=claim)",
            target,
            ", ".join(f"N={n}" for n in counts),
            len(left),
            _plural(len(left), " was", "s were"),
        )
        return left
    return _never_ran(target, shards, counts[0], left)


def _never_ran(
    target: str, shards: set[tuple[int, int]], count: int, left: list[str]
) -> list[str]:
    """The tenants of *left* in a shard of *count* that no run took."""
    taken = {k for k, _ in shards}
    missing = [k for k in range(count) if k not in taken]
    left = [name for name in left if any(in_shard(name, k, count) for k in missing)]
    if not left:
        return []
    log.warning(
        "shard%s %s of the runs to %s never ran: %d known tenant%s in %s"
        " (JOB_COMPLETIONS must equal the Job's completions; -x tenant=failed"
        " selects them)",
        _plural(len(missing), "", "s"),
        ", ".join(f"{k}/{count}" for k in missing),
        target,
        len(left),
        _plural(len(left), "", "s"),
        _plural(len(missing), "it", "them"),
    )
    return left


def to_resume(
    rows: Sequence[Row],
    versions: Callable[[list[str]], dict[str, list[str] | None]],
) -> list[str]:
    """What ``-x tenant=failed`` selects from *rows*: the unfinished tenants
    (failed, pending, interrupted, not attempted, on a server that did not
    answer, needing repair), and each tenant whose version -- read by
    *versions* (None: its schema or database is gone) -- is not the target
    its row records, whatever the row says."""
    unfinished = sorted(row.tenant for row in rows if row.unfinished)
    behind = _behind(rows, versions)
    if unfinished or behind:
        counts: dict[str, int] = {}
        for row in rows:
            if row.unfinished:
                counts[row.status] = counts.get(row.status, 0) + 1
        parts = [f"{count} {status}" for status, count in sorted(counts.items())]
        if behind:
            parts.append(f"{len(behind)} not at the target their row records")
        log.info("-x tenant=failed: %s", ", ".join(parts))
    return sorted({*unfinished, *behind})


def _behind(
    rows: Sequence[Row],
    versions: Callable[[list[str]], dict[str, list[str] | None]],
) -> list[str]:
    """The finished tenants whose version, read now, is not their row's target
    (a tenant whose schema or database is gone is not behind: it is missing)."""
    checked = {row.tenant: row.target for row in rows if not row.unfinished}
    checked = {name: target for name, target in checked.items() if target}
    found = versions(sorted(checked)) if checked else {}
    return sorted(
        name
        for name, target in checked.items()
        if (now := found.get(name)) is not None and shown_revisions(now) != target
    )
