"""One revision's SQL at a time, as ``alembic upgrade A:B --sql`` writes it.

The environment's own env.py renders the range offline, once, in-process;
the output is cut at Alembic's ``-- Running upgrade A -> B`` markers, so each
revision is linted on its own -- linting a whole history at once would hide
everything, since every table would look new.  Alembic's bookkeeping (its
version table, the data-flag data version table, ``BEGIN`` / ``COMMIT``) is
left out.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

__all__ = ["Rendered", "render", "revisions_in", "split_statements"]

_MARKER = re.compile(r"^-- Running upgrade (\S*) -> (\S+)\s*$", re.MULTILINE)
_DOLLAR = re.compile(r"\$[A-Za-z_0-9]*\$")
LINT_TENANT = "lint_tenant"
"""The tenant a multitenant environment renders for (nothing is connected)."""


@dataclass
class Rendered:
    """The statements of one revision, and the revision file."""

    script: Script
    statements: list[str]


def revisions_in(script: ScriptDirectory, spec: str) -> list[Script]:
    """The revisions of *spec*, oldest first: ``base:head`` (the default),
    ``A:B`` (after A, up to B), or one revision."""
    if ":" in spec:
        lower, _, upper = spec.partition(":")
        found = list(script.iterate_revisions(upper or "heads", lower or "base"))
        if lower and lower != "base":  # "after A": A itself is not linted
            found = [
                s for s in found if s.revision != script.get_revision(lower).revision
            ]
    else:
        found = [script.get_revision(spec)] if spec else []
    return [s for s in reversed(found) if s is not None]


def render(config: Config, revisions: list[Script]) -> list[Rendered]:
    """Each of *revisions*' statements, rendered by env.py in offline mode."""
    if not revisions:
        return []
    first, last = revisions[0], revisions[-1]
    down = first.down_revision
    start = "base" if down is None else (down if isinstance(down, str) else down[0])
    buffer = io.StringIO()
    saved = config.output_buffer, dict(config.attributes)
    config.output_buffer = buffer
    config.attributes.setdefault("configure_logger", False)
    config.attributes.setdefault("tenant", LINT_TENANT)
    wanted = {s.revision: s for s in revisions}
    range_ = f"{start}:{last.revision}" if start != "base" else last.revision
    try:
        command.upgrade(config, range_, sql=True)
    finally:
        config.output_buffer = saved[0]
        config.attributes.clear()
        config.attributes.update(saved[1])
    sections: dict[str, list[str]] = {}
    text = buffer.getvalue()
    marks = list(_MARKER.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        sections.setdefault(mark[2], []).extend(
            s for s in split_statements(text[mark.end() : end]) if not _bookkeeping(s)
        )
    return [Rendered(wanted[r], sections.get(r, [])) for r in wanted]


def _bookkeeping(statement: str) -> bool:
    """Alembic's version tables and its transaction framing."""
    upper = statement.upper()
    return (
        "ALEMBIC_VERSION" in upper
        or "ALEMBIC_DATA_VERSION" in upper
        or upper in ("BEGIN", "COMMIT", "START TRANSACTION")
    )


def split_statements(sql: str) -> list[str]:
    """Statements of *sql*, split at semicolons outside quotes, dollar
    quotes and comments; comments and blank statements are dropped."""
    statements: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(sql):
        end, kept = _token(sql, i)
        if kept == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(kept)
        i = end
    statements.append("".join(current))
    return [" ".join(s.split()) for s in statements if s.strip()]


def _token(sql: str, i: int) -> tuple[int, str]:
    """The token of *sql* at *i*: where it ends, and its text as kept (a
    comment: nothing; a quoted string or dollar-quoted body: whole; else one
    character)."""
    n, ch = len(sql), sql[i]
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return (n if end == -1 else end + 1), ""
    if ch in "'\"":
        end = i + 1
        while end < n and (sql[end] != ch or sql[end : end + 2] == ch * 2):
            end += 2 if sql[end : end + 2] == ch * 2 else 1
        return end + 1, sql[i : end + 1]
    if ch == "$" and (tag := _DOLLAR.match(sql, i)) is not None:
        end = sql.find(tag[0], tag.end())
        end = n if end == -1 else end + len(tag[0])
        return end, sql[i:end]
    return i + 1, ch
