"""Reading one environment's options, each checked, and the keys nobody reads.

:class:`OptionReader` reads an option by its row's key only (``-x``,
``config.attributes``, ``[tool.alembic]``, the ini), with the row's bounds and
default; it refuses an unknown ``-x`` key before any SQL and warns of a
near-miss ini or TOML key.
"""

from __future__ import annotations

import difflib
import re

from alembic.config import Config

from ..alembic_internals import (
    toml_beside_ini,
)
from ..logs import logger_for
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

__all__ = ["ALEMBIC_OPTIONS", "OptionReader", "split_keys"]

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
