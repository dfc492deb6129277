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

import difflib
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
    toml_beside_ini,
)
from ..database.connections import expand_url, transactional_ddl
from ..database.timeouts import Timeouts
from ..logs import logger_for
from .filters import IncludeName, all_names
from .option_table import OPTIONS, option, options_for
from .options import (
    InvalidOption,
    get_option,
    keys_read,
    main_option,
    parse_bool,
    parse_duration,
    x_arguments,
)

__all__ = [
    "OptionReader",
    "Settings",
    "configure_arguments",
    "parse_column_order",
    "register_revision_check",
]

log = logger_for(__name__)

# [alembic] options of Alembic itself (any version we support) and the URL,
# so that they are never reported as unknown
ALEMBIC_OPTIONS = frozenset(
    {opt.key for opt in OPTIONS if opt.alembic} | {option("sqlalchemy.url").key}
)


class OptionReader:
    """Reads options for one :meth:`Settings.load`.  It knows every key of
    *template* from the option table, and remembers every other key it was
    asked for, so that unknown keys close to those can be reported."""

    def __init__(self, config: Config, template: str = "async-shared") -> None:
        self.config = config
        self.template = template
        self.x_args = x_arguments(config)
        self.x_list: list[str] = list(getattr(config.cmd_opts, "x", None) or [])
        rows = list(options_for(template))
        self.x_keys: set[str] = {row.x for row in rows if row.x}
        self.ini_keys: set[str] = {row.key for row in rows if row.in_ini}
        self.asked: set[tuple[str | None, str | None]] = set()
        """``(-x key, ini key)`` of every option read (None: no such form)."""

    def value(self, key: str) -> tuple[str | bool | None, str]:
        """``(value, source)`` of the option whose row is *key*: from its
        ``-x`` form, ``config.attributes``, then the ini."""
        row = option(key)
        x = row.x or key
        self.asked.add((x, row.key))
        self.x_keys.add(x)
        self.ini_keys.add(row.key)
        return get_option(self.config, x, ini_key=row.key, x_args=self.x_args)

    def flag(self, key: str) -> bool:
        """A boolean option (default: its row's, else false); bad values
        raise ``CommandError``."""
        value, source = self.value(key)
        if value is None:
            default = option(key).default_for(self.template) or "false"
            return parse_bool(default, source=f"the default of {key}")
        return parse_bool(value, source=source)

    def flag_or_word(self, key: str) -> str:
        """A boolean option with a third value, its row's default (``known``,
        ``auto``): ``"always"`` (true), ``"never"`` (false) or that word."""
        word = option(key).default_for(self.template) or ""
        value, source = self.value(key)
        if value is None or (isinstance(value, str) and value.strip().lower() == word):
            return word
        try:
            return "always" if parse_bool(value, source=source) else "never"
        except InvalidOption as exc:
            raise InvalidOption(f"{exc} or {word!r}") from None

    def text(self, key: str) -> str | None:
        """A string option (``None`` when unset); a bool is refused."""
        value, source = self.value(key)
        if isinstance(value, bool):
            raise InvalidOption.expected(value, source, "text")
        return value.strip() if value is not None else None

    def duration(self, key: str) -> float:
        """Seconds of a duration option (``10s``, ``500ms``, ``2min``, plain
        seconds); its default and accepted values from its row."""
        row = option(key)
        value, source = self.value(key)
        where = source if value is not None else f"the default of {row.key}"
        return parse_duration(
            row.default_for(self.template) or "0" if value is None else value,
            source=where,
            accepted=row.accepted,
            zero=row.kind == "duration",
        )

    def whole(self, key: str) -> int:
        """A whole number within its row's bounds; default from the row."""
        row = option(key)
        low, high = row.low or 0, row.high if row.high is not None else 2**31
        value = self.text(key)
        if value is None:
            return int(row.default_for(self.template) or low)
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            x = row.x or key
            source = f"{x} / {row.key}" if row.key != x else x
            raise InvalidOption.expected(value, source, row.accepted)
        return int(value)

    def ini(self, key: str) -> str | None:
        """An option of the ini (or ``[tool.alembic]``) only; no ``-x`` form
        (``None`` when unset or blank)."""
        self.asked.add((None, key))
        self.ini_keys.add(key)
        value, source = main_option(self.config, key)
        if isinstance(value, bool):
            raise InvalidOption.expected(value, source, "text")
        return value.strip() if value else None

    def x_only(self, key: str) -> str | None:
        """A ``-x`` argument that has no ini form (``None`` when not given)."""
        self.asked.add((key, None))
        self.x_keys.add(key)
        return self.x_args.get(key)

    def check_x(self) -> None:
        """Refuse, before any SQL, a ``-x`` key that is neither an option of
        this environment nor one env.py reads itself (declared in ``x_keys``,
        or read through
        :func:`~alembic_recipes.configuration.options.get_option` already),
        and one of ours given twice: a typo must not turn ``plan=true`` into
        a real run.  The nearest known key is suggested."""
        given = [arg.partition("=") for arg in self.x_list]
        declared = split_keys(self.ini("x_keys"))
        for key, _, _ in given:
            if key in self.x_keys or key in declared or key in keys_read(self.config):
                continue
            raise InvalidOption(f"unknown -x {key!r}: {self._suggest(key)}")
        for key in self.x_keys:
            values = [value for k, _, value in given if k == key]
            if len(values) > 1:
                shown = ", ".join(repr(v) for v in values)
                raise InvalidOption(
                    f"-x {key} is given {len(values)} times ({shown}): give it once"
                )

    def _suggest(self, key: str) -> str:
        """What to say about the unknown ``-x`` *key*: the ``-x`` form of an
        ini name, else the nearest ``-x`` key, else every one."""
        by_ini = {
            row.key: row.x
            for row in options_for(self.template)
            if row.x and row.x != row.key
        }
        close = difflib.get_close_matches(key, sorted(self.x_keys), n=1, cutoff=0.7)
        if key in by_ini:
            hint = f"did you mean -x {by_ini[key]}? ({key} is its ini name)"
        elif close:
            hint = f"did you mean -x {close[0]}?"
        else:
            hint = f"this environment reads -x {', '.join(sorted(self.x_keys))}"
        return (
            f"{hint}; -x keys your env.py reads itself are declared in"
            " x_keys in [alembic]"
        )

    def warn_unknown(self) -> None:
        """Warn about ``[alembic]`` / ``[tool.alembic]`` options close to ours."""
        section = f"[{self.config.config_ini_section}]"
        for where, keys in (
            (section, _ini_keys(self.config)),
            *_toml_keys(self.config),
        ):
            for key in sorted(set(keys) - self.ini_keys):
                if key not in ALEMBIC_OPTIONS and not key.startswith("sqlalchemy."):
                    _warn_if_close(key, f"option {key} in {where}", self.ini_keys)


def split_keys(value: str | None) -> set[str]:
    """``"seed, region"`` -> ``{"seed", "region"}``."""
    return {part for part in re.split(r"[\s,]+", value or "") if part}


def _ini_keys(config: Config) -> list[str]:
    parser = config.file_config
    section = config.config_ini_section
    if not parser.has_section(section):
        return []
    defaults = set(parser.defaults())
    return [key for key in parser.options(section) if key not in defaults]


def _toml_keys(config: Config) -> list[tuple[str, list[str]]]:
    """``[tool.alembic]`` keys of pyproject.toml (Alembic >= 1.16), if any."""
    toml_beside_ini(config)
    toml = getattr(config, "toml_alembic_config", None)
    return [("[tool.alembic]", list(toml))] if toml else []


def _warn_if_close(key: str, where: str, known: set[str]) -> bool:
    """Warn when *key* is close to a *known* one; whether it was."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
    if close:
        log.warning("unknown %s is ignored: did you mean %s?", where, close[0])
    return bool(close)


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
