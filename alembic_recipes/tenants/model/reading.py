"""Reading the multitenant options: each checked, one line naming a bad value.

:meth:`~.settings.TenantSettings.read` calls these; each takes the
:class:`~alembic_recipes.configuration.settings.OptionReader` and gives the
settings' fields it reads.
"""

from __future__ import annotations

import configparser
import os
import re
from collections import ChainMap
from collections.abc import Sequence
from configparser import BasicInterpolation
from pathlib import Path
from typing import Any, Literal

from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import URL, make_url

from ...configuration.option_table import option
from ...configuration.options import InvalidOption, InvalidOptionType
from ...configuration.reader import OptionReader
from ...database.engines import display_url, expand_url
from ...database.errors import first_line
from .names import (
    ALL,
    FAILED,
    is_pattern,
    split_list,
    validate_all,
    validate_selector,
)
from .rollout import parse_rollout
from .tenant import MARK, Server

__all__ = [
    "PROGRESS_MODES",
    "ProgressMode",
    "check_writable",
    "read_extensions",
    "read_progress",
    "read_report",
    "read_requested",
    "read_rollout",
    "read_servers",
    "read_sharing",
    "read_tenants_url",
    "read_url",
]

ProgressMode = Literal["auto", "bar", "lines", "quiet"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "bar", "lines", "quiet")


def read_requested(reader: OptionReader) -> dict[str, Any]:
    """``every``, ``requested``, ``selectors`` and ``excluded`` of ``-x tenant``."""
    raw: object = reader.x_only("tenant")
    source = "-x tenant"
    if raw is None:
        raw = reader.config.attributes.get("tenant")
        source = "config.attributes['tenant']"
    if raw is None:
        return {}
    items = _items(raw, source)
    checked = list(dict.fromkeys(validate_selector(i, source=source) for i in items))
    positive = tuple(i for i in checked if not i.startswith("!"))
    excluded = tuple(i[1:] for i in checked if i.startswith("!"))
    return {
        "every": positive in ((ALL,), ()),
        "requested": tuple(
            i for i in positive if i not in (ALL, FAILED) and not is_pattern(i)
        ),
        "selectors": positive or (ALL,),
        "excluded": excluded,
    }


def _items(raw: object, source: str) -> list[object]:
    """The items of ``-x tenant`` (comma-separated) or of the attribute (a
    name, or a list of them)."""
    if isinstance(raw, str):
        return list(raw.split(","))  # exact: " all" is no tenant
    if isinstance(raw, Sequence):
        return list(raw)
    raise InvalidOptionType(
        f"invalid {source}: expected a name, a list of names or 'all', got {raw!r}"
    )


def read_extensions(reader: OptionReader) -> str | None:
    """``extensions_schema``: a schema name PostgreSQL takes, or None."""
    name = reader.ini("extensions_schema")
    if name is not None and (len(name) > 63 or "\x00" in name):
        accepted = option("extensions_schema").accepted
        raise InvalidOption.expected(name, "extensions_schema", accepted)
    return name


def read_report(reader: OptionReader) -> str | None:
    """``-x report=PATH``: a file that can be written, checked now."""
    path = reader.text("report")
    return None if path is None else check_writable(path, "-x report")


def read_rollout(reader: OptionReader) -> tuple[str, ...]:
    value, source = reader.value("rollout")  # the ini writes 10%% (configparser)
    if value is None:
        return ()
    if isinstance(value, bool):
        raise InvalidOption.expected(value, source, option("rollout").accepted)
    return parse_rollout(value, source)


def read_progress(reader: OptionReader) -> ProgressMode:
    value, source = reader.value("progress")
    if value is None:
        return "auto"
    for mode in PROGRESS_MODES:
        if value == mode:
            return mode
    raise InvalidOption.expected(value, source, option("progress").accepted)


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def read_sharing(reader: OptionReader) -> dict[str, Any]:
    """``shard`` (``claim``, ``K/N``, ``auto``), ``run`` and ``claim_lease``."""
    value = reader.text("shard")
    lease = reader.duration("claim_lease")
    run_id = reader.text("run")
    if value != "claim":
        if run_id is not None:
            raise InvalidOption(
                f"-x run={run_id} names a run that claiming runners share: it needs"
                " -x shard=claim (or shard = claim in [alembic])"
            )
        return {"shard": _shard(value), "claim_lease": lease}
    if run_id is None:
        raise InvalidOption(
            "-x shard=claim needs the run id its runners share: -x run=ID (e.g. the"
            " Kubernetes Job's name, -x run=$(JOB_NAME)); a new deploy, a new id"
        )
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidOption.expected(run_id, "-x run", option("run").accepted)
    return {"claim": True, "run_id": run_id, "claim_lease": lease}


def _shard(value: str | None) -> tuple[int, int] | None:
    """``-x shard=K/N`` (K from 0 to N-1), or ``auto``: a Kubernetes Indexed
    Job's ``JOB_COMPLETION_INDEX`` of ``JOB_COMPLETIONS``."""
    if value is None:
        return None
    accepted = option("shard").accepted
    source = "-x shard"
    if value == "auto":
        index = os.environ.get("JOB_COMPLETION_INDEX")
        count = os.environ.get("JOB_COMPLETIONS")
        if index is None or count is None:
            raise InvalidOption(
                "-x shard=auto needs the environment variables JOB_COMPLETION_INDEX"
                " (set by Kubernetes for an Indexed Job's pods) and JOB_COMPLETIONS"
                " (set it in the Job's manifest to spec.completions); got"
                f" JOB_COMPLETION_INDEX={index!r}, JOB_COMPLETIONS={count!r}"
            )
        value, source = (
            f"{index}/{count}",
            "-x shard=auto (JOB_COMPLETION_INDEX/JOB_COMPLETIONS)",
        )
    k, slash, n = value.partition("/")
    digits = f"{k}{n}".isascii() and k.isdigit() and n.isdigit()
    if not (slash and digits and 0 <= int(k) < int(n) <= 100_000):
        raise InvalidOption.expected(value, source, accepted)
    return int(k), int(n)


_SERVER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")


def read_servers(reader: OptionReader, strategy: str) -> tuple[Server, ...]:
    """``servers`` and their sections; only those of ``-x server=`` if given."""
    raw = reader.ini("servers")
    wanted = reader.x_only("server")
    names = split_list(raw)
    if not names:
        if wanted is not None:
            raise InvalidOption(
                f"-x server={wanted}: no servers are configured (servers = ... in"
                " [alembic])"
            )
        return ()
    _check_server_names(names)
    if wanted is not None:
        names = _wanted_servers(wanted, names)
    return tuple(_server(reader, name, strategy) for name in names)


def _check_server_names(names: list[str]) -> None:
    """Each name of ``servers`` a section name, none listed twice."""
    for name in names:
        if not _SERVER_NAME.fullmatch(name):
            raise InvalidOption.expected(name, "servers", option("servers").accepted)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidOption(f"servers lists {', '.join(duplicates)} more than once")


def _wanted_servers(wanted: str, names: list[str]) -> list[str]:
    """The servers of *names* that ``-x server=`` *wanted* names."""
    chosen = split_list(wanted)
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        raise InvalidOption(
            f"invalid -x server={wanted}: expected names listed in servers"
            f" ({', '.join(names)})"
        )
    return [name for name in names if name in chosen]


def _server(reader: OptionReader, name: str, strategy: str) -> Server:
    config = reader.config
    scoped = f"{config.config_ini_section}.{name}"
    section = scoped if config.file_config.has_section(scoped) else name
    if not config.file_config.has_section(section):
        raise CommandError(
            f"server {name!r} has no [{name}] section: add one with its"
            " sqlalchemy.url to the ini file"
        )
    url = read_url(config, strategy, section=section)
    if url is None:
        raise CommandError(f"server {name!r}: [{section}] has no sqlalchemy.url")
    items = dict(config.file_config.items(section))
    source = f"tenants in [{section}]"
    tenants = tuple(validate_all(split_list(items.get("tenants")), source))
    pattern = (items.get("tenants_pattern") or "").strip() or None
    return Server(name, url, tenants, pattern, section)


def _raw_url(config: Config, section: str | None = None) -> str:
    """``sqlalchemy.url`` with ``{tenant}`` marked -- where written, and in
    the values of ``${NAME}`` (a URL from a Secret) -- before ``%(...)s``
    expands: ``{tenant}`` in the project's own path is left alone."""
    parser = config.file_config
    section = section or config.config_ini_section
    if not parser.has_option(section, "sqlalchemy.url"):
        return ""
    raw = parser.get(section, "sqlalchemy.url", raw=True).replace("{tenant}", MARK)
    raw = expand_url(
        raw,
        f"[{section}]",
        each=lambda value: value.replace("{tenant}", MARK).replace("%", "%%"),
    )
    lookup = ChainMap(dict(parser.items(section, raw=True)))
    try:
        expanded = BasicInterpolation().before_get(
            parser, section, "sqlalchemy.url", raw, lookup
        )
    except configparser.Error as exc:
        raise InvalidOption(
            f"invalid sqlalchemy.url in [{section}]: {first_line(exc)}"
            " (write a literal % as %%)"
        ) from None
    return expanded.strip()


def read_url(config: Config, strategy: str, section: str | None = None) -> URL | None:
    """``sqlalchemy.url`` (of *section*), checked for *strategy*; None: none."""
    raw = _raw_url(config, section)
    if not raw:
        return None  # only a caller-shared connection can serve
    try:
        url = make_url(raw)
    except Exception as exc:
        shown = display_url(raw)
        where = f" in [{section}]" if section else ""
        raise InvalidOption(f"invalid sqlalchemy.url{where} {shown}: {exc}") from None
    _check_marked(url, strategy)
    return url


def _check_marked(url: URL, strategy: str) -> None:
    """``{tenant}`` (marked) where *strategy* needs it: only in the database
    part, and there for the database strategy; nowhere, on PostgreSQL, for
    the schema strategy."""
    shown = display_url(url).replace(MARK, "{tenant}")
    marked = MARK in (url.database or "")
    elsewhere = (url.username, url.password, url.host, *url.query.values())
    if any(MARK in str(part) for part in elsewhere if part is not None):
        raise CommandError(
            f"sqlalchemy.url {shown}: {{tenant}} may stand only in the database"
            " part (the database name, or the SQLite file path)"
        )
    if strategy == "database" and not marked:
        raise CommandError(
            f"tenant_strategy = database needs sqlalchemy.url with {{tenant}} in"
            f" its database part, got {shown}"
        )
    if strategy == "schema" and (marked or url.get_backend_name() != "postgresql"):
        raise CommandError(
            "tenant_strategy = schema needs one PostgreSQL sqlalchemy.url"
            f" (no {{tenant}}), got {shown}"
        )


def read_tenants_url(value: str | None) -> str | None:
    if value is not None:
        value = expand_url(value, "tenants_url")
        try:
            make_url(value)
        except Exception as exc:
            raise InvalidOption(
                f"invalid tenants_url {display_url(value)}: {exc}"
            ) from None
    return value


def check_writable(path: str, source: str) -> str:
    """*path*, when a report can be written there: its folder exists and is
    writable, and it is no folder itself; else one ``CommandError``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    problem = None
    if target.is_dir():
        problem = "it is a folder"
    elif not folder.is_dir():
        problem = f"its folder {str(folder)!r} does not exist"
    elif not os.access(folder, os.W_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        problem = "it cannot be written"
    if problem:
        raise CommandError(
            f"invalid {source} {path!r}: {problem}; expected the path of a file"
            " to write the run's record to (JSON Lines), in an existing folder"
        )
    return path
