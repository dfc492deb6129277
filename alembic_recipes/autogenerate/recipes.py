"""Autogenerate recipes from the Alembic cookbook: tested, composable, ini-switchable.

:func:`autogenerate_hooks` reads the ``[alembic]`` options below and returns
the ``include_object`` / ``process_revision_directives`` keywords for
``context.configure()``, combined with the caller's own hooks so that none
silently replaces another:

=========================================  =======  ==============================
ini option                                 default  effect
=========================================  =======  ==============================
``skip_empty_revisions``                   true     no file when nothing changed
``skip_index_drops_of_dropped_tables``     true     no DROP INDEX for dropped tables
``exclude_views``                          true     ``info={"is_view": True}`` tables
                                                    are left alone
``keep_unknown_tables``                    false    never DROP TABLE for tables the
                                                    metadata does not know
``column_order``                           (empty)  e.g. ``id, *, created_at,
                                                    updated_at`` orders CREATE TABLE
=========================================  =======  ==============================

The building blocks (:func:`all_of`, :func:`chain`, :func:`skip_empty_revisions`
...) are public for envs that wire hooks by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from alembic.autogenerate.rewriter import Rewriter
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column

from ..alembic_internals import column_copy, reflected_table, running_command
from ..configuration.filters import IncludeObject, all_of
from ..configuration.settings import Settings, parse_column_order
from ..logs import logger_for

__all__ = [
    "IncludeObject",
    "RevisionDirectives",
    "all_of",
    "autogenerate_hooks",
    "chain",
    "column_order",
    "exclude_views",
    "keep_unknown_tables",
    "skip_empty_revisions",
    "skip_index_drops_of_dropped_tables",
]

log = logger_for(__name__)

RevisionDirectives = Callable[[MigrationContext, Any, list[ops.MigrationScript]], None]
"""``process_revision_directives(context, revision, directives)``."""


def chain(*hooks: RevisionDirectives | None) -> RevisionDirectives:
    """One ``process_revision_directives`` calling each hook in turn.

    Stops early once a hook removed every directive (nothing left to process).
    """
    active = [h for h in hooks if h is not None]

    def process_revision_directives(
        context: MigrationContext, revision: Any, directives: list[ops.MigrationScript]
    ) -> None:
        for hook in active:
            if not directives:
                return
            hook(context, revision, directives)

    return process_revision_directives


def _autogenerating(context: MigrationContext) -> bool:
    """True under ``alembic revision --autogenerate`` (not ``check``, not plain
    ``revision``, whose directives must always be written)."""
    revision_context = context.opts.get("revision_context")
    command_args = getattr(revision_context, "command_args", {}) or {}
    return bool(command_args.get("autogenerate")) and running_command() != "check"


def skip_empty_revisions(runs: int = 1) -> RevisionDirectives:
    """Write no revision file when autogenerate found nothing to change.

    Environments that call ``run_migrations()`` several times (one per
    database) get this hook called once per call, with the revision's
    ``upgrade_ops_list`` growing each time: the decision waits for the
    *runs*-th call, and skips only when every database's ops are empty.
    """

    def hook(
        context: MigrationContext, revision: Any, directives: list[ops.MigrationScript]
    ) -> None:
        if not _autogenerating(context):
            return
        script = directives[0]
        if len(script.upgrade_ops_list) < runs:
            return  # more databases to compare: the structure is not complete
        if all(upgrade_ops.is_empty() for upgrade_ops in script.upgrade_ops_list):
            directives[:] = []
            log.info("No changes in schema detected; no revision file written.")

    return hook


def skip_index_drops_of_dropped_tables(
    context: MigrationContext, revision: Any, directives: list[ops.MigrationScript]
) -> None:
    """Drop tables safely: no DROP INDEX for tables the same migration drops, and
    tables dropped dependents first / re-created referenced first (upgrade and
    downgrade).

    MySQL/MariaDB refuse to drop an index that backs a foreign key, and the
    DROP TABLE removes the index anyway.  Alembic lists removed tables in no
    particular order (it varies from one run to the next), so a referenced
    table could be dropped before, or re-created after, the table referencing it.
    """
    for script in directives:
        containers: list[ops.OpContainer] = [
            *script.upgrade_ops_list,
            *script.downgrade_ops_list,
        ]
        for container in containers:
            dropped = {
                (op.table_name, op.schema)
                for op in container.ops
                if isinstance(op, ops.DropTableOp)
            }
            kept = list(_without_index_drops(container.ops, dropped))
            container.ops = _dependents_first(kept)


_Key = tuple[str, str | None]


def _table_key(directive: ops.MigrateOperation) -> _Key | None:
    name = getattr(directive, "table_name", None)
    return (name, getattr(directive, "schema", None)) if name else None


def _dependents_first(
    directives: list[ops.MigrateOperation],
) -> list[ops.MigrateOperation]:
    """A stable topological order of *directives* in which a table is created
    before the tables referencing it and before any other op on it, and
    dropped after the tables referencing it and after any other op on it.
    Directives with no such constraint keep Alembic's order."""
    order = _stable_order(_must_follow(directives))
    return [directives[i] for i in order]


def _must_follow(directives: list[ops.MigrateOperation]) -> list[set[int]]:
    """For each directive, the indexes of the directives that must come first."""
    keys = [_table_key(d) for d in directives]
    creates = _indexes_of(ops.CreateTableOp, directives, keys)
    drops = _indexes_of(ops.DropTableOp, directives, keys)
    created, dropped = set(creates.values()), set(drops.values())
    must_follow: list[set[int]] = [set() for _ in directives]
    for i, (directive, key) in enumerate(zip(directives, keys, strict=True)):
        if key is None:
            continue
        targets = _referenced_tables(directive) - {key}
        if i in created:  # after the tables it references
            must_follow[i] |= {creates[t] for t in targets if t in creates}
        elif i in dropped:
            _drop_follows(i, keys, targets, created, drops, must_follow)
        elif key in creates:  # ops on a new table come after its creation
            must_follow[i].add(creates[key])
    return must_follow


def _drop_follows(
    i: int,
    keys: list[_Key | None],
    targets: set[_Key],
    created: set[int],
    drops: dict[_Key, int],
    must_follow: list[set[int]],
) -> None:
    """Drop *i* comes after every other op on its table, and before the drops
    of the tables it references (*targets*)."""
    same_table = {j for j, k in enumerate(keys) if k == keys[i] and j != i}
    must_follow[i] |= same_table - created
    for target in targets & drops.keys():
        must_follow[drops[target]].add(i)


def _indexes_of(
    kind: type[ops.MigrateOperation],
    directives: list[ops.MigrateOperation],
    keys: list[_Key | None],
) -> dict[_Key, int]:
    """Each table's directive of *kind* (create, drop), by the table's key."""
    return {
        key: i
        for i, (directive, key) in enumerate(zip(directives, keys, strict=True))
        if key is not None and isinstance(directive, kind)
    }


def _stable_order(must_follow: list[set[int]]) -> list[int]:
    """Indexes in a topological order of *must_follow*, the lowest ready index
    first; on a cycle, the rest in their own order."""
    order: list[int] = []
    while len(order) < len(must_follow):
        done = set(order)
        ready = [
            i
            for i in range(len(must_follow))
            if i not in done and must_follow[i] <= done
        ]
        if not ready:  # a cycle: keep the rest as Alembic listed them
            return order + [i for i in range(len(must_follow)) if i not in done]
        order.append(ready[0])
    return order


def _referenced_tables(table_op: Any) -> set[_Key]:
    """(name, schema) of the tables a CreateTableOp/DropTableOp references."""
    if isinstance(table_op, ops.DropTableOp):
        reverse = reflected_table(table_op)  # as autogenerate saw it
        items = reverse.columns if reverse is not None else []
    elif isinstance(table_op, ops.CreateTableOp):
        items = table_op.columns
    else:
        return set()
    targets = []
    for item in items:
        targets += [e.target_fullname for e in getattr(item, "elements", ())]
        targets += [fk.target_fullname for fk in getattr(item, "foreign_keys", ())]
    found: set[_Key] = set()
    for target in targets:
        parts = target.split(".")
        found.add((parts[-2], parts[-3] if len(parts) >= 3 else table_op.schema))
    return found


def _without_index_drops(
    directives: Iterable[ops.MigrateOperation], dropped: set[tuple[str, str | None]]
) -> Iterator[ops.MigrateOperation]:
    for directive in directives:
        if isinstance(directive, ops.ModifyTableOps):
            if (directive.table_name, directive.schema) in dropped:
                directive.ops = list(_without_index_drops(directive.ops, dropped))
                if not directive.ops:
                    continue
        elif isinstance(directive, ops.DropIndexOp):
            if (directive.table_name, directive.schema) in dropped:
                continue
        yield directive


def exclude_views(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave out tables flagged ``info={"is_view": True}`` (views: no CREATE TABLE)."""
    for item in (obj, compare_to):
        info = getattr(item, "info", None)
        if type_ == "table" and info and info.get("is_view"):
            return False
    return True


def keep_unknown_tables(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Never drop a table that exists in the database but not in the metadata."""
    return not (type_ == "table" and reflected and compare_to is None)


def column_order(spec: Sequence[str]) -> Rewriter:
    """A Rewriter ordering CREATE TABLE columns by *spec*.

    *spec* lists column names; ``*`` stands for every other column, in model
    order: ``["id", "*", "created_at", "updated_at"]``.  Constraints follow the
    columns, unchanged.
    """
    names = parse_column_order(list(spec), source="column_order")
    star = names.index("*")
    first, last = names[:star], names[star + 1 :]
    writer = Rewriter()

    @writer.rewrites(ops.CreateTableOp)
    def order_columns(
        context: MigrationContext, revision: Any, op: ops.CreateTableOp
    ) -> ops.CreateTableOp:
        def rank(position: int, item: Any) -> tuple[int, int]:
            if not isinstance(item, Column):
                return (3, position)
            if item.key in first:
                return (0, first.index(item.key))
            if item.key in last:
                return (2, last.index(item.key))
            return (1, position)

        ordered = sorted(enumerate(op.columns), key=lambda pair: rank(*pair))
        items: list[Any] = [column_copy(item) for _, item in ordered]
        return ops.CreateTableOp(
            op.table_name,
            items,
            schema=op.schema,
            comment=op.comment,
            info=op.info,
            prefixes=op.prefixes,
            **op.kw,
        )

    return writer


_registered_steps: list[RevisionDirectives] = []


def register_directives_step(step: RevisionDirectives) -> None:
    """Add *step* to the ``process_revision_directives`` of every
    :func:`autogenerate_hooks`, before the other rewrites: how an extension
    (:mod:`alembic_recipes.replaceable`, on import) orders its own operations."""
    if step not in _registered_steps:
        _registered_steps.append(step)


def _registered(
    context: MigrationContext, revision: Any, directives: list[Any]
) -> None:
    """The steps registered by the time autogenerate runs."""
    for step in list(_registered_steps):
        step(context, revision, directives)


def autogenerate_hooks(
    settings: Settings | Config,
    *,
    include_object: IncludeObject | None = None,
    process_revision_directives: RevisionDirectives | None = None,
    runs: int = 1,
) -> dict[str, Any]:
    """``include_object`` and ``process_revision_directives`` for ``configure()``.

    Ours (switched by the ini options in this module's docstring) are combined
    with yours: your ``include_object`` must agree too, and your
    ``process_revision_directives`` runs after our rewrites and before the
    empty-revision check.  *runs*: how many times env.py calls
    ``run_migrations()`` per command (one per database).  *settings*: what
    env.py loaded (a ``Config`` is read into settings here).
    """
    settings = Settings.of(settings)
    filters: list[IncludeObject | None] = [
        exclude_views if settings.exclude_views else None,
        keep_unknown_tables if settings.keep_unknown_tables else None,
        include_object,
    ]
    order = settings.column_order
    hooks: list[RevisionDirectives | None] = [
        _registered,
        column_order(order) if order else None,
        skip_index_drops_of_dropped_tables
        if settings.skip_index_drops_of_dropped_tables
        else None,
        process_revision_directives,
        skip_empty_revisions(runs) if settings.skip_empty_revisions else None,
    ]
    return {
        "include_object": all_of(*filters),
        "process_revision_directives": chain(*hooks),
    }
