"""Safety lint: revisions that would lock or rewrite what a live application uses.

``python -m alembic_recipes lint [RANGE]`` (default: the revisions not yet
applied to the database -- with ``-x tenant=NAME``, that tenant's -- or all
of them when that cannot be read) renders each revision's SQL on its
own (:mod:`.render`), checks it against the built-in rules (:mod:`.rules`)
and, for PostgreSQL, against squawk where it is installed (:mod:`.squawk`),
and prints one line per problem::

    migrations/versions/1f2e_add_index.py:1f2e3d4c5b6a:index-not-concurrent: CREATE
    INDEX on invoice blocks its writes while the index builds; fix: build it with
    postgresql_concurrently=True inside op.get_context().autocommit_block()

It exits 1 when it found a problem, 0 when none.  A revision opts out of a
rule with a comment anywhere in its file: ``# lint: allow drop-column``
(several: ``# lint: allow drop-column, squawk:ban-drop-database``).  The
post-write hook ``alembic_recipes_lint`` lints each new revision file as
``alembic revision`` writes it, as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory, write_hooks
from sqlalchemy.engine import make_url

from ..configuration.reader import OptionReader
from ..database.errors import failing_as, first_line
from ..logs import logger_for
from .render import render, revisions_in
from .rules import RULES, Finding, check_statements
from .squawk import squawk_findings

__all__ = [
    "HOOK_NAME",
    "RULES",
    "Finding",
    "Problem",
    "lint",
    "lint_hook",
    "pending_range",
]

HOOK_NAME = "alembic_recipes_lint"
log = logger_for(__name__)
_ALLOW = re.compile(r"#\s*lint:\s*allow\s+([\w\-:, ]+)")


@dataclass(frozen=True)
class Problem:
    """A finding in one revision file (or in the configuration: ``*``)."""

    path: str
    revision: str
    finding: Finding

    def __str__(self) -> str:
        f = self.finding
        return f"{self.path}:{self.revision}:{f.rule}: {f.message}; fix: {f.fix}"


def _allowed(path: str) -> set[str]:
    try:
        text = Path(path).read_text()
    except OSError:
        return set()
    return {
        rule.strip().removeprefix("squawk:")
        for found in _ALLOW.findall(text)
        for rule in found.split(",")
        if rule.strip()
    }


def _dialect(config: Config) -> str:
    url = config.get_main_option("sqlalchemy.url") or ""
    try:
        return make_url(url).get_backend_name() if url else "postgresql"
    except Exception:
        return "postgresql"


def _timeouts_off(config: Config) -> list[Problem]:
    reader = OptionReader(config)
    where = Path(config.config_file_name or "alembic.ini").name
    return [
        Problem(
            where,
            "*",
            Finding(
                "missing-timeouts",
                f"{key} is 0: a migration waits (or runs) as long as the server"
                " lets it",
                f"set {key} (default {'10s' if key == 'lock_timeout' else '1h'})",
            ),
        )
        for key in ("lock_timeout", "statement_timeout")
        if reader.duration(key) == 0
    ]


def lint(
    config: Config,
    revisions: str = "base:head",
    *,
    squawk: bool = True,
    include: Iterable[str] = (),
    dialect: str | None = None,
) -> list[Problem]:
    """The problems of *revisions* (``base:head``, ``A:B`` or one revision)."""
    script = ScriptDirectory.from_config(config)
    with failing_as(f"could not render {revisions} offline (alembic upgrade --sql)"):
        rendered = render(config, revisions_in(script, revisions))
    dialect = dialect or _dialect(config)
    extra = (
        squawk_findings({r.script.revision: r.statements for r in rendered}, include)
        if squawk and dialect == "postgresql"
        else {}
    )
    problems = _timeouts_off(config)
    root = Path.cwd()
    for each in rendered:
        path = each.script.path
        allowed = _allowed(path)
        shown = Path(path).resolve()
        shown_path = (
            str(shown.relative_to(root)) if shown.is_relative_to(root) else path
        )
        for finding in [
            *check_statements(each.statements, dialect),
            *extra.get(each.script.revision, []),
        ]:
            if finding.rule.removeprefix("squawk:") not in allowed:
                problems.append(Problem(shown_path, each.script.revision, finding))
    return problems


def pending_range(config: Config) -> tuple[str, str]:
    """The revisions not yet applied: ``(range, why)``; ``base:head`` when the
    database's revision cannot be read (no server, no tenant given, a SQLite
    file not created yet -- reading would create it)."""
    from ..runtime.commands import current_heads

    url = config.get_main_option("sqlalchemy.url") or ""
    try:
        parsed = make_url(url) if url else None
    except Exception:
        parsed = None
    if (
        parsed is not None
        and parsed.get_backend_name() == "sqlite"
        and "{tenant}" not in url
        and not Path(parsed.database or ":memory:").exists()
    ):
        return "base:head", "the SQLite database does not exist yet"
    attributes = dict(config.attributes)
    config.attributes.setdefault("configure_logger", False)
    try:
        heads = set(current_heads(config))
    except Exception as exc:
        return "base:head", f"its revision could not be read: {first_line(exc)}"
    finally:
        config.attributes.clear()
        config.attributes.update(attributes)
    if len(heads) != 1:
        what = "at base" if not heads else "at several revisions"
        return "base:head", f"the database is {what}"
    (head,) = heads
    return f"{head}:head", f"the database is at {head}"


@write_hooks.register(HOOK_NAME)
def lint_hook(filename: str, options: Mapping[str, str]) -> None:
    """Post-write hook: lint the revision just written; warnings only, never
    failing ``alembic revision`` (``config`` option: the ini, default
    ``alembic.ini`` in the current directory)."""
    try:
        config = Config(options.get("config") or "alembic.ini")
        script = ScriptDirectory.from_config(config)
        target = Path(filename).resolve()
        revision = next(
            s.revision
            for s in script.walk_revisions()
            if Path(s.path).resolve() == target
        )
        problems = lint(config, revision)
    except Exception as exc:
        log.warning("could not lint %s: %s: %s", filename, type(exc).__name__, exc)
        return
    for problem in problems:
        log.warning("%s", problem)
