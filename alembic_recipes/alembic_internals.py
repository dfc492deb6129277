"""Every use of Alembic's private API, in one place.

Alembic gives env.py no public way to tell which command runs, to run other
functions of a revision for one scope, or to render a revision path without
migrating; the cookbook recipes need a few attributes that have no public
spelling either.  Each such use is one function here, named by what it
gives, with the Alembic versions it holds for; ``tests/test_alembic_internals.py``
checks every one on the oldest supported Alembic and the newest, so an Alembic
release that moves one of them fails there, not somewhere in a fleet run.

The rest of the package imports nothing private from Alembic -- nor from
SQLAlchemy, whose one private hook used (the mock connection's DDL visitor)
is here too.  ``tests/test_structure.py`` holds that, reading the source.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from alembic import context
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.mock import MockConnection

__all__ = [
    "VERSION_TABLE",
    "StepFunction",
    "alembic_may_end",
    "announcing_steps",
    "autogenerate_ops",
    "before_each_step",
    "before_first_steps",
    "column_copy",
    "configured",
    "current_is_plain",
    "environment",
    "environment_state",
    "offline_environment",
    "reflected_table",
    "refusing_mock_ddl",
    "replace_step_function",
    "run_step_instead",
    "running_command",
    "static_output",
    "toml_beside_ini",
    "transaction_alembic_may_end",
    "upgrade_steps",
    "version_table",
]

VERSION_TABLE = "alembic_version"
"""Alembic's default version table name (``context.configure(version_table=)``)."""

StepFunction = Callable[[Any, MigrationContext], Iterable[Any]]
"""What a command hands env.py as ``fn``: ``fn(heads, context)`` -> steps."""

_commands: weakref.WeakKeyDictionary[EnvironmentContext, str] = (
    weakref.WeakKeyDictionary()
)
_states: weakref.WeakKeyDictionary[EnvironmentContext, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def environment() -> EnvironmentContext | None:
    """The ``EnvironmentContext`` env.py runs in, or None outside a command.

    ``alembic.context`` is a proxy; the object behind it is ``context._proxy``
    (every Alembic since 0.x).
    """
    return getattr(context, "_proxy", None)


def environment_state(env: EnvironmentContext) -> dict[str, Any]:
    """A dict that lives as long as *env*: what the package remembers for one
    env.py run (the loaded settings, checks done once)."""
    return _states.setdefault(env, {})


def running_command() -> str:
    """Name of the Alembic command env.py runs under: ``"upgrade"``,
    ``"downgrade"``, ``"current"``, ``"stamp"``, ``"revision"``, ``"check"`` ...,
    or ``""`` outside a command.  Read once per env.py run.

    Every command passes a step function (``context_opts["fn"]``) defined
    inside it, e.g. ``upgrade.<locals>.upgrade`` or
    ``check.<locals>.retrieve_migrations``: stable since Alembic 1.0.  Test
    tools that wrap them in methods (pytest-alembic's
    ``CommandExecutor.upgrade.<locals>.upgrade``) are read the same way.
    """
    env = environment()
    return "" if env is None else _command_cached(env)


def _command_cached(env: EnvironmentContext) -> str:
    if env not in _commands:
        opts = getattr(env, "context_opts", None) or {}
        _commands[env] = _command_of(opts.get("fn"))
    return _commands[env]


def _command_of(fn: object) -> str:
    qualname = getattr(fn, "__qualname__", "")
    if ".<locals>." not in qualname:
        return ""
    # the innermost public function around the step: upgrade.<locals>.upgrade,
    # history.<locals>._display_history_w_current.<locals>._display_current_history;
    # test tools wrap commands in methods: CommandExecutor.upgrade.<locals>...
    *around, _ = qualname.split(".<locals>.")
    names = [part.rsplit(".", 1)[-1] for part in reversed(around)]
    return next((name for name in names if not name.startswith("_")), names[0])


def current_is_plain() -> bool:
    """True when ``alembic current`` runs without ``--verbose`` and without
    ``--check-heads``: it prints each head's ``cmd_format(False)``, nothing
    more.  Read from the closure of ``current``'s step function
    (``display_version``, whose free variables include ``verbose`` -- and
    ``check_heads`` from Alembic 1.15); False when they cannot be read (a
    wrapped step function): the caller then lets Alembic print."""
    env = environment()
    fn = (getattr(env, "context_opts", None) or {}).get("fn")
    if callable(fn):
        fn = inspect.unwrap(fn)  # through our own wrappers (functools.wraps)
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or not cells or "verbose" not in code.co_freevars:
        return False
    values = dict(zip(code.co_freevars, (c.cell_contents for c in cells), strict=False))
    return not values.get("verbose") and not values.get("check_heads")


@contextmanager
def replace_step_function(
    wrap: Callable[[StepFunction], StepFunction],
) -> Iterator[None]:
    """Meanwhile, the command's step function (``context_opts["fn"]``) is
    ``wrap(original)``; env.py's next ``configure()`` + ``run_migrations()``
    use it.  Nothing changes outside a command."""
    env = environment()
    opts = getattr(env, "context_opts", None)
    original = opts.get("fn") if opts is not None else None
    if env is None or opts is None or original is None:
        yield
        return
    _command_cached(env)  # read from the command's own function, before the swap
    opts["fn"] = functools.wraps(original)(wrap(original))
    try:
        yield
    finally:
        opts["fn"] = original


@contextmanager
def steps_until(stop: str) -> Iterator[None]:
    """Meanwhile, the command's next run of migrations stops after revision
    *stop*: its steps are the command's own, up to that one."""

    def wrap(original: StepFunction) -> StepFunction:
        def steps(heads: Any, migration_context: MigrationContext) -> Iterable[Any]:
            found = []
            for step in original(heads, migration_context):
                found.append(step)
                if getattr(getattr(step, "revision", None), "revision", None) == stop:
                    break
            return found

        return steps

    with replace_step_function(wrap):
        yield


@contextmanager
def announcing_steps(callback: Callable[[str], None]) -> Iterator[None]:
    """Meanwhile, the command's next run of migrations calls ``callback(revision
    id)`` just before each revision step runs (:func:`before_each_step`)."""

    def wrap(original: StepFunction) -> StepFunction:
        def steps(heads: Any, migration_context: MigrationContext) -> Iterable[Any]:
            found = list(original(heads, migration_context))
            before_each_step(found, callback)
            return found

        return steps

    with replace_step_function(wrap):
        yield


def configured(*keys: str) -> dict[str, Any]:
    """Of *keys*, those env.py passed to ``context.configure()`` in the
    running environment (``EnvironmentContext.context_opts``); {} before
    its first ``configure()`` or outside a command."""
    env = environment()
    opts = getattr(env, "context_opts", None) or {}
    return {key: opts[key] for key in keys if key in opts}


@contextmanager
def offline_environment(
    config: Config,
    script: ScriptDirectory,
    dialect: Dialect,
    **opts: Any,
) -> Iterator[EnvironmentContext]:
    """An environment of Alembic's offline (``--sql``) mode, configured as
    ``alembic upgrade --sql`` configures one, for *dialect* (its driver's
    class: what it renders is what that driver would be sent); installed as
    ``alembic.context`` meanwhile, the running one put back after.  Revisions
    rendered in it see what they see under ``--sql`` -- the config and its
    ``-x`` arguments, ``get_bind()``'s mock connection -- but for
    ``context.is_offline_mode()``, which says what it says online: the
    script rendered is replayed online, as what the online run would do.

    *opts* go to the environment (``fn``, ``starting_rev``,
    ``destination_rev``) and to ``configure()`` (the rest).  The running
    environment is put back through ``EnvironmentContext._install_proxy``
    (Alembic >= 1.0), as entering it had installed it.
    """
    outer = environment()
    own = {
        k: opts.pop(k) for k in ("fn", "starting_rev", "destination_rev") if k in opts
    }
    env = EnvironmentContext(config, script, as_sql=True, **own)
    # offline mode that renders for an online run: a revision asking gets the
    # online run's answer, and takes its branch (an instance attribute: the
    # module proxy installs what getattr() finds, and knows no subclass)
    env.is_offline_mode = lambda: False  # type: ignore[method-assign]
    try:
        with env:
            env.configure(
                url=f"{dialect.name}+{dialect.driver}://",
                dialect_opts={"paramstyle": "named"},
                **opts,
            )
            yield env
    finally:
        if outer is not None:
            outer._install_proxy()


def before_first_steps(env: EnvironmentContext, callback: Callable[[], None]) -> None:
    """Call *callback* once, when the command has first computed its steps --
    Alembic has loaded the revision files it needs by then -- before any step
    runs.  The command's step function keeps its name (:func:`running_command`);
    env.py's ``configure()`` must come after this call to use it."""
    opts = getattr(env, "context_opts", None)
    original = opts.get("fn") if opts is not None else None
    if opts is None or original is None:
        return
    _command_cached(env)
    done = False

    @functools.wraps(original)
    def steps(heads: Any, migration_context: MigrationContext) -> Iterable[Any]:
        nonlocal done
        found = list(original(heads, migration_context))
        if not done:
            done = True
            callback()
        return found

    opts["fn"] = steps


class Endable(Protocol):
    """What Alembic's migration context does with its transaction."""

    @property
    def is_active(self) -> bool: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


@contextmanager
def alembic_may_end(transactions: Mapping[Connection, Endable]) -> Iterator[None]:
    """Meanwhile, a migration context env.py configures on one of these
    connections takes the transaction we began there as its own, as if it had
    begun it: ``autocommit_block()`` may commit it and begin the next, as in
    stock Alembic (the caller then ends whichever is open).

    Alembic treats a transaction open before ``configure()`` as the caller's
    and never ends it; ``autocommit_block()`` then fails on
    ``assert self._transaction is not None``.  Handing it over is one
    attribute, ``MigrationContext._transaction`` (Alembic >= 1.5), set when
    the command computes its steps; ``begin_transaction()`` still sees the
    transaction as external, so ``transaction_per_migration`` changes nothing.
    A transaction may be any :class:`Endable`: one that refuses to end, say.
    """

    def wrap(original: StepFunction) -> StepFunction:
        def steps(heads: Any, migration_context: MigrationContext) -> Iterable[Any]:
            connection = migration_context.connection
            transaction = transactions.get(connection)  # type: ignore[arg-type]
            if transaction is not None and not transaction.is_active:
                # an earlier run's autocommit_block() ended ours and began the
                # one open now, on our behalf: that one is handed over
                current = connection.get_transaction() if connection else None
                transaction = current if current is not None else transaction
            if (
                transaction is not None
                and migration_context._transaction is None
                and transaction.is_active
            ):
                # Alembic only calls commit()/rollback() and reads is_active
                migration_context._transaction = transaction  # type: ignore[assignment]
            return original(heads, migration_context)

        return steps

    with replace_step_function(wrap):
        yield


@contextmanager
def transaction_alembic_may_end(conn: Connection) -> Iterator[None]:
    """A transaction on *conn* that env.py's migration context may end
    (:func:`alembic_may_end`); whichever is open at the end is committed, or
    rolled back on an error."""
    transaction = conn.begin()
    try:
        with alembic_may_end({conn: transaction}):
            yield
    except BaseException:
        if not conn.invalidated and not conn.closed:
            conn.rollback()
        raise
    conn.commit()


def run_step_instead(
    step: Any, names: tuple[str, str], default: Callable[[], None]
) -> None:
    """Make a revision step run another function of its revision module:
    ``names[0]`` on upgrade, ``names[1]`` on downgrade (*default* when the
    module has none).  Stamp steps (no revision) are left alone.

    ``RevisionStep.migration_fn`` is read by ``MigrationContext.run_migrations``
    (Alembic >= 1.0).
    """
    revision = getattr(step, "revision", None)
    if revision is not None and hasattr(step, "is_upgrade"):
        name = names[0] if step.is_upgrade else names[1]
        step.migration_fn = getattr(revision.module, name, default)


def upgrade_steps(script: ScriptDirectory, destination: str, heads: Any) -> Any:
    """The steps ``alembic upgrade <destination>`` runs from *heads*
    (``ScriptDirectory._upgrade_revs``, Alembic >= 1.0)."""
    return script._upgrade_revs(destination, heads)


def version_table(migration_context: MigrationContext) -> Table:
    """The version ``Table`` a migration context writes (``_version``)."""
    table: Table = migration_context._version
    return table


def reflected_table(table_op: ops.DropTableOp) -> ops.CreateTableOp | None:
    """The table a ``DropTableOp`` drops, as autogenerate reflected it: the
    ``CreateTableOp`` that would undo it, with its columns and constraints
    (``DropTableOp._reverse``, Alembic >= 1.0; None when built by hand)."""
    reverse: ops.CreateTableOp | None = getattr(table_op, "_reverse", None)
    return reverse


def column_copy(item: Any) -> Any:
    """A copy of a ``Column`` or constraint for another ``CreateTableOp``
    (SQLAlchemy's ``_copy()``, 2.0 and later)."""
    return item._copy()


def autogenerate_ops(
    migration_context: MigrationContext, *, take: bool = False
) -> ops.UpgradeOps | None:
    """The operations the comparison that just ran found (``check``,
    ``revision --autogenerate``); None outside autogenerate.

    Each ``run_migrations()`` of an autogenerate run fills the newest
    ``UpgradeOps`` of the revision being built (``RevisionContext.
    generated_revisions``, handed to env.py as ``context.opts
    ["revision_context"]``, Alembic >= 1.0).  With *take* they are moved out,
    upgrade and downgrade, so what Alembic reports at the end does not repeat
    them.
    """
    revision_context = migration_context.opts.get("revision_context")
    revisions = getattr(revision_context, "generated_revisions", None)
    if not revisions:
        return None
    script = revisions[-1]
    found = script.upgrade_ops_list[-1]
    copy = ops.UpgradeOps(list(found.ops), upgrade_token=found.upgrade_token)
    if take:
        found.ops[:] = []
        script.downgrade_ops_list[-1].ops[:] = []
    return copy


def before_each_step(steps: Iterable[Any], callback: Callable[[str], None]) -> None:
    """Call ``callback(revision id)`` just before each revision step of
    *steps* runs (wrapping ``RevisionStep.migration_fn``, read by
    ``MigrationContext.run_migrations``, Alembic >= 1.0); stamp steps are
    left alone."""
    for step in steps:
        revision = getattr(step, "revision", None)
        original = getattr(step, "migration_fn", None)
        if revision is None or original is None:
            continue

        def announced(
            *args: Any,
            _fn: Callable[..., Any] = original,
            _id: str = revision.revision,
            **kwargs: Any,
        ) -> Any:
            callback(_id)
            return _fn(*args, **kwargs)

        # the step's name (its log line: "Running upgrade a -> b") is its
        # function's: keep the revision's own
        step.migration_fn = functools.wraps(original)(announced)


def toml_beside_ini(config: Config) -> None:
    """Give *config* the ``pyproject.toml`` beside its ini file when it was made
    without one (``Config("alembic.ini")`` in a test, pytest-alembic's copy of
    a config), as the ``alembic`` command reads ``./pyproject.toml``: its
    ``[tool.alembic]`` options are then read as from the command line.

    Alembic >= 1.16 (``toml_file_name``); nothing when the config has a toml
    file, no ini file, or no ``pyproject.toml`` with a ``[tool.alembic]``
    table is there.  Private: ``toml_alembic_config`` is memoized in the
    instance ``__dict__`` (as ``{}`` when it was read without a file).
    """
    if not hasattr(config, "toml_file_name") or config.toml_file_name:
        return
    if not config.config_file_name:
        return
    beside = Path(config.config_file_name).with_name("pyproject.toml")
    try:
        text = beside.read_text(encoding="utf-8")
    except OSError:
        return
    if "[tool.alembic]" not in text:
        return
    config.toml_file_name = str(beside)
    config.__dict__.pop("toml_alembic_config", None)


def static_output(text: str) -> None:
    """Write *text* into an offline (``--sql``) script as it is (Alembic's
    ``impl.static_output``: no statement terminator added)."""
    context.get_context().impl.static_output(text)


@contextmanager
def refusing_mock_ddl(refuse: Callable[[Any, dict[str, Any]], None]) -> Iterator[None]:
    """Meanwhile SQLAlchemy's mock connection (offline DDL: ``create(bind)``,
    ``create_all(bind)``) calls ``refuse(element, options)`` before each
    statement, which raises to refuse it -- through SQLAlchemy's private
    ``MockConnection._run_ddl_visitor``, the one hook there is."""
    original = MockConnection._run_ddl_visitor

    def checked(self: MockConnection, visitor: Any, element: Any, **kw: Any) -> None:
        refuse(element, kw)
        original(self, visitor, element, **kw)

    MockConnection._run_ddl_visitor = checked  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        MockConnection._run_ddl_visitor = original  # type: ignore[method-assign]
