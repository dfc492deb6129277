"""Every option of an environment, read and checked once, when env.py loads.

Where a value comes from, most specific first: ``-x key=value`` on the
command line, ``config.attributes[key]`` (programmatic callers), then the
``[alembic]`` section of the ini file.  ``Settings.load(config)`` at the top
of env.py reads them all: a bad value is one ``CommandError`` naming the
value, where it came from and what is accepted -- before any connection is
opened, whatever the command, also when nothing would be migrated.  So is an
unknown ``-x`` key (the ones env.py reads itself are declared in ``x_keys``)
and one of ours given twice.  An unknown ``[alembic]`` option close to one of
ours gets a warning (``did you mean continue_on_error?``).

Each template has its subclass (:class:`~alembic_recipes.data.DataSettings`,
:class:`~alembic_recipes.tenants.TenantSettings`,
:class:`~alembic_recipes.multidb.DatabaseSettings`); the runners receive the
settings object instead of re-reading ``config``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ..alembic_internals import (
    before_first_steps,
    environment,
    environment_state,
    running_command,
)
from ..database.engines import expand_url, transactional_ddl
from ..database.timeouts import Timeouts
from ..logs import logger_for
from .filters import IncludeName, all_names
from .option_table import option
from .options import (
    InvalidOption,
)
from .reader import OptionReader

__all__ = [
    "OptionReader",
    "Settings",
    "configure_arguments",
    "parse_column_order",
    "register_revision_check",
]

log = logger_for(__name__)


WRITING_COMMANDS = ("upgrade", "downgrade", "stamp")


def _target_schema(reader: OptionReader) -> str | None:
    """``target_schema``: a schema name PostgreSQL takes (1 to 63 characters,
    no NUL), or None."""
    name, source = reader.value("target_schema")
    if name is None:
        return None
    if isinstance(name, bool) or not 0 < len(name) <= 63 or "\x00" in name:
        raise InvalidOption.expected(name, source, option("target_schema").accepted)
    return name


def configure_arguments(
    connection: Connection | None, *name_filters: IncludeName | None
) -> dict[str, Any]:
    """What every ``configure_options()`` passes: ``transactional_ddl`` for
    *connection* (online), and one ``include_name`` of the filters given."""
    options: dict[str, Any] = {}
    if connection is not None:
        options["transactional_ddl"] = transactional_ddl(connection)
    if any(name_filters):
        options["include_name"] = all_names(*name_filters)
    return options


RevisionCheck = Callable[[ScriptDirectory], None]
_revision_checks: list[RevisionCheck] = []


def register_revision_check(check: RevisionCheck) -> None:
    """Run *check* on the script directory once the command has loaded its
    revision files, before any step runs (e.g. ``replaces=`` references of
    replaceable objects, registered when that package is imported).  A
    ``CommandError`` from it fails the command with nothing applied."""
    if check not in _revision_checks:
        _revision_checks.append(check)


def _check_revisions(env: EnvironmentContext) -> None:
    """When the command loads the revision files (as it would anyway), run
    the registered checks on them; revision files load no earlier."""

    def check() -> None:
        env.script.revision_map.heads  # noqa: B018 - the command's own load
        for each in list(_revision_checks):
            each(env.script)

    before_first_steps(env, check)


_COLUMN = re.compile(r"[^\s,*]+")


def parse_column_order(spec: str | list[str], *, source: str) -> tuple[str, ...]:
    """``"id, *, created_at"`` -> ``("id", "*", "created_at")``; exactly one ``*``."""
    items = spec.split(",") if isinstance(spec, str) else spec
    names = tuple(name.strip() for name in items if name.strip())
    if names.count("*") != 1 or not all(
        n == "*" or _COLUMN.fullmatch(n) for n in names
    ):
        raise InvalidOption(
            f"invalid {source} {', '.join(names)!r}: list column names with"
            " exactly one '*' standing for the other columns, e.g."
            " 'id, *, created_at, updated_at'"
        )
    return names


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The options every template has (the cookbook autogenerate recipes)."""

    TEMPLATE: ClassVar[str] = "async-shared"
    """The template whose rows of the option table these settings read."""

    config: Config = field(repr=False, compare=False)
    skip_empty_revisions: bool = True
    skip_index_drops_of_dropped_tables: bool = True
    exclude_views: bool = True
    keep_unknown_tables: bool = False
    column_order: tuple[str, ...] = ()
    """Empty: Alembic's order."""
    migration_lock: bool = True
    """Writing commands hold the database's migration lock (``migration_lock``)."""
    migration_lock_timeout: float = 300.0
    """Seconds to wait for it (``migration_lock_timeout``)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    """Lock and statement timeouts of every migration transaction."""
    lock_retries: int = 3
    """Runs again after a lock timeout, with backoff (``lock_retries``)."""
    target_schema: str | None = None
    """PostgreSQL schema to migrate into (``config.attributes["target_schema"]``,
    as alembic-gauntlet sets it), or None: the connection's own."""

    @property
    def database_url(self) -> str | None:
        """``sqlalchemy.url`` of ``[alembic]``, each ``${NAME}`` in it
        replaced by that environment variable (None: not set)."""
        url = self.config.get_main_option("sqlalchemy.url")
        return expand_url(url, "[alembic]") if url else None

    @classmethod
    def load(cls, config: Config) -> Self:
        """Read and check every option now: an unknown or repeated ``-x`` key
        first, then each value; warn about near-miss ini options."""
        reader = OptionReader(config, cls.TEMPLATE)
        try:
            reader.check_x()
            settings = cls(config=config, **cls.read(reader))
        finally:  # a near-miss option may be why a value is missing or wrong
            reader.warn_unknown()
        env = environment()
        if env is not None and env.config is config:
            state = environment_state(env)
            if "settings" not in state:
                _check_revisions(env)
            state["settings"] = settings
        return settings

    @classmethod
    def read(cls, reader: OptionReader) -> dict[str, Any]:
        """The field values of this class, read through *reader*."""
        order = reader.text("column_order")
        return {
            "skip_empty_revisions": reader.flag("skip_empty_revisions"),
            "skip_index_drops_of_dropped_tables": reader.flag(
                "skip_index_drops_of_dropped_tables"
            ),
            "exclude_views": reader.flag("exclude_views"),
            "keep_unknown_tables": reader.flag("keep_unknown_tables"),
            "column_order": (
                parse_column_order(order, source="column_order") if order else ()
            ),
            "migration_lock": reader.flag("migration_lock"),
            "migration_lock_timeout": reader.duration("migration_lock_timeout"),
            "timeouts": Timeouts(
                lock=reader.duration("lock_timeout"),
                statement=reader.duration("statement_timeout"),
            ),
            "lock_retries": reader.whole("lock_retries"),
            "target_schema": _target_schema(reader),
        }

    def configure_options(
        self,
        connection: Connection | None = None,
        *,
        include_name: IncludeName | None = None,
    ) -> dict[str, Any]:
        """The ``context.configure()`` arguments this environment needs:
        ``transactional_ddl`` for *connection* (online), and the package's
        ``include_name`` filters combined with yours (*include_name*)."""
        options = configure_arguments(connection, *self.name_filters(), include_name)
        if self.target_schema is not None:
            options["version_table_schema"] = self.target_schema
        return options

    def name_filters(self) -> list[IncludeName]:
        """The package's own ``include_name`` filters for this environment."""
        return []

    @property
    def command(self) -> str:
        """The Alembic command running (``"upgrade"``, ``"current"`` ...), or ``""``."""
        return running_command()

    def locks(self) -> bool:
        """True when this command takes the migration lock: a writing command
        (upgrade, downgrade, stamp) with ``migration_lock`` on."""
        return self.migration_lock and self.command in WRITING_COMMANDS

    @classmethod
    def of(cls, source: Config | Settings) -> Self:
        """*source* itself when it is settings of this kind; else those env.py
        loaded for the running command; else freshly loaded from the config."""
        if isinstance(source, cls):
            return source
        config = source.config if isinstance(source, Settings) else source
        env = environment()
        loaded = environment_state(env).get("settings") if env else None
        if isinstance(loaded, cls) and loaded.config is config:
            return loaded
        return cls.load(config)
