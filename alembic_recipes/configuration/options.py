"""Options the Alembic way: ``-x key=value``, ``config.attributes``, then the ini.

``-x`` wins because it is the most specific thing a user typed; programmatic
callers (for whom ``-x`` is empty) use ``config.attributes``; the
``[alembic]`` section of the ini holds the project default.
"""

from __future__ import annotations

import re
import weakref

from alembic.config import Config
from alembic.util import CommandError

from ..alembic_internals import toml_beside_ini
from .option_table import option

__all__ = [
    "BOOLEAN_WORDS",
    "InvalidOption",
    "InvalidOptionType",
    "get_bool_option",
    "get_option",
    "keys_read",
    "main_option",
    "parse_bool",
    "parse_duration",
    "x_arguments",
]


class InvalidOption(CommandError):
    """A bad option value, the one error type for it: one line naming the
    value, where it came from and what is accepted.  The ``alembic`` CLI
    prints it as ``FAILED: <message>`` and exits 255; no SQL has been sent."""

    @classmethod
    def expected(cls, value: object, source: str, accepted: str) -> InvalidOption:
        """``invalid value <value> for <source>: expected <accepted>``."""
        return cls(f"invalid value {value!r} for {source}: expected {accepted}")


class InvalidOptionType(InvalidOption, TypeError):
    """A ``config.attributes`` entry of the wrong type (a programmatic
    caller's mistake): also a ``TypeError``."""


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
BOOLEAN_WORDS = "/".join(_TRUE[:3] + _FALSE[:3] + ("1", "0"))
"""The accepted spellings of a boolean option, as shown in error messages."""


def parse_bool(value: str | bool, *, source: str) -> bool:
    """Parse ``value`` as a boolean; *source* names where it came from in errors."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidOption.expected(
        value, source, f"one of {BOOLEAN_WORDS} (case-insensitive)"
    )


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|h)?", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}


MAX_SECONDS = 2_147_483
"""The longest duration an option takes: PostgreSQL's timeouts are at most
2^31 - 1 milliseconds (MySQL's ``lock_wait_timeout``: a year)."""


def parse_duration(
    value: str | bool, *, source: str, accepted: str, zero: bool = True
) -> float:
    """Seconds of a duration: ``"10s"``, ``"500ms"``, ``"2min"``, ``"1h"``, or
    plain seconds (``"1.5"``).  ``0`` is allowed when *zero* (it turns a
    timeout off); anything else raises :class:`InvalidOption` with *accepted*."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match is not None else -1.0
    if seconds < 0 or (seconds == 0 and not zero):
        raise InvalidOption.expected(value, source, accepted)
    if seconds > MAX_SECONDS:
        raise InvalidOption(
            f"invalid {source} {value!r}: at most {MAX_SECONDS}s (about 24 days,"
            " the longest timeout PostgreSQL takes); expected"
            f" {accepted}"
        )
    return seconds


def x_arguments(config: Config) -> dict[str, str]:
    """``-x`` arguments as a dict, as Alembic parses them (``-x flag`` gives ``""``)."""
    raw = getattr(config.cmd_opts, "x", None) or []
    return {key: value for key, _, value in (arg.partition("=") for arg in raw)}


_read: weakref.WeakKeyDictionary[Config, set[str]] = weakref.WeakKeyDictionary()


def keys_read(config: Config) -> set[str]:
    """The ``-x`` keys read through :func:`get_option` for *config* so far
    (the package's and a user's env.py's own)."""
    return _read.get(config, set())


def get_option(
    config: Config,
    key: str,
    *,
    ini_key: str | None = None,
    x_args: dict[str, str] | None = None,
) -> tuple[str | bool | None, str]:
    """Return ``(value, source)`` for an option, or ``(None, "")`` when unset.

    Looks at ``-x key=...``, then ``config.attributes[key]``, then the
    ``[alembic]`` ini option *ini_key* (default: *key*).  *x_args*: the
    already parsed ``-x`` arguments.
    """
    x_args = x_arguments(config) if x_args is None else x_args
    _read.setdefault(config, set()).add(key)
    if key in x_args:
        return x_args[key], f"-x {key}"
    if key in config.attributes:
        value = config.attributes[key]
        if not isinstance(value, (str, bool)):
            raise InvalidOptionType.expected(
                value, f"config.attributes[{key!r}]", "a bool or a string"
            )
        return value, f"config.attributes[{key!r}]"
    return main_option(config, ini_key or key)


def main_option(config: Config, key: str) -> tuple[str | bool | None, str]:
    """``(value, source)`` of option *key* of the ``[alembic]`` section of the
    ini file, else of ``[tool.alembic]`` in pyproject.toml (Alembic >= 1.16,
    through its own ``get_alembic_option``); ``(None, "")`` when unset or blank.

    TOML values keep their type where we have one: booleans stay booleans,
    numbers become text, lists are joined with ``", "``.
    """
    toml_beside_ini(config)
    section = config.config_ini_section
    if config.file_config.has_option(section, key) or not hasattr(
        config, "get_alembic_option"
    ):
        value = config.get_main_option(key)
        if value is None or not value.strip():
            return None, ""
        return value, f"ini option {key}"
    source = f"[tool.alembic] {key} in pyproject.toml"
    typed = config.toml_alembic_config.get(key)
    # booleans and numbers as parsed (Alembic 1.16.0's get_alembic_option
    # refuses them); text and lists through it, for %(here)s
    found: object = typed
    if not isinstance(typed, bool | int | float):
        found = config.get_alembic_option(key)
    _check_toml_type(key, found, source)
    typed_value = _toml_value(found, source)
    if typed_value is None and isinstance(found, str):
        return None, ""  # blank
    return typed_value, source


def _toml_value(found: object, source: str) -> str | bool | None:
    """A ``[tool.alembic]`` value as the options read it: booleans kept,
    numbers as text, lists joined with ``", "``; None for a blank string."""
    if found is None or isinstance(found, bool):
        return found
    if isinstance(found, int | float):
        return str(found)
    if isinstance(found, list) and all(isinstance(v, str | int) for v in found):
        return ", ".join(str(v) for v in found)
    if isinstance(found, str):
        return found if found.strip() else None
    raise InvalidOption.expected(
        found, source, "a string, a number, a boolean or a list of strings"
    )


# the TOML types an option of each kind takes besides a string
_TOML_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "word": (bool,),  # create_tenants = true
    "int": (int,),
    "seconds": (int, float),
    "duration": (int, float),
    "list": (list,),
}


def _check_toml_type(key: str, found: object, source: str) -> None:
    """A ``[tool.alembic]`` value of a type its option does not take (a
    list for a timeout, a number for a path) is an error naming it."""
    try:
        row = option(key)
    except KeyError:  # not ours: Alembic's or the user's, as it is
        return
    allowed = (str, *_TOML_TYPES.get(row.kind, ()))
    if found is None or (
        isinstance(found, allowed)
        and not (isinstance(found, bool) and bool not in allowed)
    ):
        return
    labels = {str: "a string", bool: "a boolean", int: "a number",
              float: "a number", list: "a list of strings"}  # fmt: skip
    kinds = " or ".join(dict.fromkeys(labels[t] for t in allowed))
    raise InvalidOption(
        f"invalid {source}: {found!r} is a TOML {type(found).__name__}; expected"
        f" {kinds}{f' ({row.accepted})' if row.accepted else ''}"
    )


def get_bool_option(
    config: Config, key: str, *, ini_key: str | None = None, default: bool = False
) -> bool:
    """A boolean :func:`get_option`; bad values raise ``CommandError``."""
    value, source = get_option(config, key, ini_key=ini_key)
    return default if value is None else parse_bool(value, source=source)
