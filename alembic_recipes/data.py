"""Data migrations that run only when asked, and are never lost.

A ``data-flag`` revision splits its work into ``schema_upgrades``,
``data_upgrades``, ``data_downgrades`` and ``schema_downgrades``.  The data
parts run only with data migrations on (``-x data=true``,
``config.attributes["data"] = True`` or ``data_migrations = true`` in the
``[alembic]`` section).  Every data part that ran is recorded in a small
table beside ``alembic_version`` (``alembic_data_version``; ini option
``data_version_table``), which gives three guarantees:

* catch-up: with data on, every applied revision whose data part was skipped
  earlier runs it exactly once, in revision order, in the same transaction;
* downgrades undo exactly what ran: ``data_downgrades`` runs if and only if
  that revision's data part is recorded, and the record is cleared;
* visibility: with data off, every online run (``alembic current`` included)
  logs the revisions whose data parts are pending.
"""

from __future__ import annotations

import dis
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alembic import context as env
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, inspect, select
from sqlalchemy.schema import CreateTable

from .alembic_internals import running_command
from .configuration.filters import IncludeName
from .configuration.option_table import DATA_TABLE
from .configuration.options import InvalidOption
from .configuration.reader import OptionReader
from .configuration.settings import Settings
from .logs import logger_for
from .runtime.commands import read_through_env

__all__ = [
    "DATA_TABLE",
    "DataSettings",
    "data_enabled",
    "finish_data_migrations",
    "pending_data_revisions",
    "run_data_downgrade",
    "run_data_upgrade",
    "skip_data_table",
]

log = logger_for(__name__)


def skip_data_table(
    name: str | None, type_: str, parent_names: Mapping[str, str | None]
) -> bool:
    """``include_name`` filter keeping the data-record table out of autogenerate."""
    if type_ != "table":
        return True
    return name != _data_table_name(env.config)


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# commands after which pending data parts are worth a line in the log
_REPORTING_COMMANDS = ("upgrade", "downgrade", "current", "stamp")


@dataclass(frozen=True, kw_only=True)
class DataSettings(Settings):
    """The data-flag template's options."""

    TEMPLATE: ClassVar[str] = "data-flag"

    data: bool = False
    """Data parts run: ``-x data``, ``config.attributes["data"]``, then
    ``data_migrations`` in the ini; off by default."""
    data_version_table: str = DATA_TABLE

    @classmethod
    def read(cls, reader: OptionReader) -> dict[str, Any]:
        table = reader.ini("data_version_table") or DATA_TABLE
        if not _TABLE_NAME.fullmatch(table):
            raise InvalidOption(
                f"invalid data_version_table {table!r} ({len(table)} characters):"
                " expected a table name of 1 to 63 ASCII letters, digits or '_',"
                " not starting with a digit"
            )
        return {
            **super().read(reader),
            "data": reader.flag("data_migrations"),
            "data_version_table": table,
        }

    def name_filters(self) -> list[IncludeName]:
        """Autogenerate leaves the data-record table alone."""
        table = self.data_version_table

        def skip_the_data_table(
            name: str | None, type_: str, parent_names: Mapping[str, str | None]
        ) -> bool:
            return type_ != "table" or name != table

        return [skip_the_data_table]


def _data_table_name(config: Config) -> str:
    return DataSettings.of(config).data_version_table


def data_enabled(config: Config | DataSettings) -> bool:
    """Whether data parts run: ``-x data``, then ``config.attributes["data"]``,
    then the ini's ``data_migrations``; off by default.  Bad values raise
    ``CommandError`` naming the value and the accepted spellings."""
    return DataSettings.of(config).data


@dataclass
class _RunState:
    """What one migration run knows about the data table."""

    table: Table
    recorded: set[str] | None = None
    table_ready: bool = False


_states: weakref.WeakKeyDictionary[MigrationContext, _RunState] = (
    weakref.WeakKeyDictionary()
)


def _state(ctx: MigrationContext) -> _RunState:
    state = _states.get(ctx)
    if state is None:
        table = Table(
            _data_table_name(env.config),
            MetaData(),
            Column("revision", String(32), primary_key=True),
            schema=ctx.version_table_schema,
        )
        state = _states[ctx] = _RunState(table)
    return state


def _recorded(ctx: MigrationContext) -> set[str]:
    state = _state(ctx)
    if state.recorded is None:
        connection = ctx.connection
        assert connection is not None
        table = state.table
        if inspect(connection).has_table(table.name, schema=table.schema):
            state.recorded = set(connection.scalars(select(table.c.revision)))
            state.table_ready = True
        else:
            state.recorded = set()
    return state.recorded


def _record(ctx: MigrationContext, revision: str, *, ran: bool) -> None:
    state = _state(ctx)
    table = state.table
    if ran:
        if not state.table_ready:
            if ctx.as_sql:
                ctx.execute(CreateTable(table, if_not_exists=True))
            else:
                assert ctx.connection is not None
                table.create(ctx.connection, checkfirst=True)
            state.table_ready = True
        ctx.execute(table.insert().values(revision=revision))
        if state.recorded is not None:
            state.recorded.add(revision)
    else:
        ctx.execute(table.delete().where(table.c.revision == revision))
        if state.recorded is not None:
            state.recorded.discard(revision)


def _applied_in_order(ctx: MigrationContext, script: ScriptDirectory) -> list[Script]:
    """Revisions in the database's history, base first (parents before children)."""
    heads = ctx.get_current_heads()
    if not heads:
        return []
    return list(reversed(list(script.iterate_revisions(heads, "base"))))


_EMPTY_BODY_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST"}


def has_body(fn: Callable[[], None] | None) -> bool:
    """False for a missing data function or one whose body is a docstring/``pass``."""
    if fn is None:
        return False
    return any(
        ins.opname not in _EMPTY_BODY_OPS or ins.argval is not None
        for ins in dis.get_instructions(fn)
        if ins.opname != "RESUME"
    )


def _data_part(revision: Script, name: str) -> Callable[[], None] | None:
    fn = getattr(revision.module, name, None)
    return fn if has_body(fn) else None


def _describe(revision: Script) -> str:
    return f"{revision.revision}, {revision.doc}"


def _run_pending(
    ctx: MigrationContext, revisions: Iterable[Script], *, install_op: bool
) -> list[str]:
    recorded = _recorded(ctx)
    ran: list[str] = []
    for revision in revisions:
        fn = _data_part(revision, "data_upgrades")
        if revision.revision in recorded or fn is None:
            continue
        log.info("Running data upgrade (catch-up) %s", _describe(revision))
        if install_op:
            with Operations.context(ctx):
                fn()
        else:
            fn()
        _record(ctx, revision.revision, ran=True)
        ran.append(revision.revision)
    return ran


def run_data_upgrade(revision: str, data_upgrades: Callable[[], None]) -> None:
    """Called by a revision's ``upgrade()`` after its schema part.

    With data on, first catches up skipped data parts of the revision's
    ancestors, then runs *data_upgrades* and records it.  With data off the
    data part stays pending.
    """
    if not data_enabled(env.config) or not has_body(data_upgrades):
        return
    ctx = env.get_context()
    script = env.script
    if not ctx.as_sql:
        ancestors = list(script.iterate_revisions(revision, "base"))[1:]
        _run_pending(ctx, reversed(ancestors), install_op=False)
    log.info("Running data upgrade %s", _describe(script.get_revision(revision)))
    data_upgrades()
    _record(ctx, revision, ran=True)


def run_data_downgrade(revision: str, data_downgrades: Callable[[], None]) -> None:
    """Called by a revision's ``downgrade()`` before its schema part.

    Online, runs *data_downgrades* if and only if this revision's data part is
    recorded as run, then clears the record.  Offline (``--sql``), where
    nothing can be read, the data flag decides.
    """
    ctx = env.get_context()
    if ctx.as_sql:
        if not data_enabled(env.config):
            return
    elif revision not in _recorded(ctx):
        return
    log.info("Running data downgrade %s", _describe(env.script.get_revision(revision)))
    data_downgrades()
    _record(ctx, revision, ran=False)


def _pending(ctx: MigrationContext, script: ScriptDirectory) -> list[Script]:
    recorded = _recorded(ctx)
    return [
        revision
        for revision in _applied_in_order(ctx, script)
        if revision.revision not in recorded
        and _data_part(revision, "data_upgrades") is not None
    ]


def _drop_record_table_at_base(ctx: MigrationContext) -> None:
    if ctx.get_current_heads() or _recorded(ctx):
        return
    state = _state(ctx)
    if state.table_ready:
        assert ctx.connection is not None
        state.table.drop(ctx.connection)
        state.table_ready = False


def finish_data_migrations() -> None:
    """Call in env.py after ``context.run_migrations()``, inside the transaction.

    With data on, after an ``upgrade``: runs every pending data part of the
    applied revisions (catch-up); downgrades never run data upgrades.  With
    data off, after ``upgrade``/``downgrade``/``current``/``stamp``: logs
    which are pending.  A downgrade that reaches base drops the (then empty)
    record table: it leaves no trace.  Does nothing offline.
    """
    ctx = env.get_context()
    if ctx.as_sql:
        return
    script = env.script
    command = running_command()
    if command == "downgrade":
        _drop_record_table_at_base(ctx)
    if data_enabled(env.config):
        if command == "upgrade":
            _run_pending(ctx, _applied_in_order(ctx, script), install_op=True)
        return
    if command not in _REPORTING_COMMANDS:
        return
    pending = _pending(ctx, script)
    if pending:
        log.info(
            "Data migrations pending for %d revision(s): %s"
            " (run them with -x data=true)",
            len(pending),
            ", ".join(revision.revision for revision in pending),
        )


def pending_data_revisions(config: Config) -> list[str]:
    """Revisions applied to the database whose data parts have not run, base first.

    Connects the way env.py does (``config.attributes["connection"]`` or the
    ini URL); changes nothing.
    """
    return read_through_env(
        config,
        lambda context, script: [r.revision for r in _pending(context, script)],
    )
