"""A tenant's outcome, and how the lines and records show it."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

from ...database.errors import first_line

__all__ = [
    "AT_HEAD",
    "DIFFERS",
    "INTERRUPTED",
    "MIGRATED_ELSEWHERE",
    "NO_VERSIONS",
    "VERBS",
    "Outcome",
    "Versions",
    "diff_lines",
    "failure_cause",
    "iso_time",
    "not_attempted",
    "shown_revisions",
    "split_revisions",
    "status_of",
]

MIGRATED_ELSEWHERE = "migrated by another run meanwhile"
Outcome = tuple[Sequence[str], Sequence[str]] | str | None
"""One tenant's result: ``(versions before, versions after)``; None when the
batched read found it at head; :data:`MIGRATED_ELSEWHERE` when it was found at
head once locked."""

DIFFERS = "differs from the models"
INTERRUPTED = "interrupted (rolled back)"
AT_HEAD = "already at head"
NO_VERSIONS = ("failed", INTERRUPTED, "not attempted", "needs repair")
VERBS = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}
Versions = Sequence[str] | frozenset[str]


def status_of(
    command: str, result: Outcome, heads: frozenset[str]
) -> tuple[str, Versions, Versions]:
    """A tenant's status after *command* gave *result*, and its versions
    before and after: ``upgraded``, ``unchanged``, ``already at head`` ..."""
    if result is None or isinstance(result, str):
        return AT_HEAD, heads, heads
    before, after = result
    if command == "current":
        state = "at head" if frozenset(after) == heads else "behind head"
        return state, before, after
    if tuple(before) == tuple(after):
        return "unchanged", before, after
    return VERBS.get(command, command or "ran"), before, after


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


def not_attempted(name: str, server: str | None) -> dict[str, Any]:
    keys = ("from", "to", "started", "seconds", "error")
    where = {"server": server} if server else {}
    return {"tenant": name, **where, "status": "not attempted", **dict.fromkeys(keys)}


def split_revisions(revs: str) -> list[str]:
    return [] if revs == "base" else revs.split(",")


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
