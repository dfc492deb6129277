"""The built-in rules: statements that lock or rewrite a table a live
application is using, or that break the application code still running.

Each rule reads one rendered statement (offline SQL of one revision) and
knows the tables that revision created itself: a table created in the same
revision has no rows and no readers yet, so building its index or adding its
constraints is harmless.  The rules are about locks and rewrites, not style.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["RULES", "Finding", "Rule", "check_statements", "created_tables"]

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"((?:{_NAME}\.)?{_NAME})"
_VOLATILE = re.compile(
    r"\b(random|gen_random_uuid|uuid_generate_v\d\w*|clock_timestamp|timeofday|"
    r"nextval|statement_timestamp)\s*\(",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One rule broken by one statement of one revision."""

    rule: str
    message: str
    fix: str
    statement: str = ""


@dataclass(frozen=True)
class Rule:
    """A named check; *dialects*: where it applies (empty: everywhere)."""

    name: str
    fix: str
    check: Callable[[str, frozenset[str]], str | None]
    """``(statement, tables created in this revision)`` -> message or None."""
    dialects: frozenset[str] = frozenset()


def _table(name: str) -> str:
    """``"public"."Tbl"`` -> ``Tbl``; ``tbl`` -> ``tbl`` (unquoted: lowercase)."""
    last: str = re.findall(_NAME, name)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


def created_tables(statements: list[str]) -> frozenset[str]:
    """Tables a revision's statements create."""
    pattern = re.compile(
        rf"\s*CREATE\s+(?:UNLOGGED\s+|TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
        rf"{_QUALIFIED}",
        re.IGNORECASE,
    )
    return frozenset(_table(m[1]) for s in statements if (m := pattern.match(s)))


def _alter(statement: str, clause: str) -> re.Match[str] | None:
    return re.match(
        rf"\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_QUALIFIED}\s+{clause}",
        statement,
        re.IGNORECASE | re.DOTALL,
    )


def _index_not_concurrent(statement: str, new: frozenset[str]) -> str | None:
    m = re.match(
        rf"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)(?:IF\s+NOT\s+EXISTS\s+)?"
        rf"(?:{_NAME}\s+)?ON\s+(?:ONLY\s+)?{_QUALIFIED}",
        statement,
        re.IGNORECASE,
    )
    if m is None or _table(m[1]) in new:
        return None
    return f"CREATE INDEX on {_table(m[1])} blocks its writes while the index builds"


def _not_null_without_default(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(
        statement, rf"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})(.*)"
    )
    if m is None or _table(m[1]) in new:
        return None
    rest = m[3].upper()
    if "NOT NULL" not in rest or "DEFAULT" in rest:
        return None
    return (
        f"adding NOT NULL column {m[2]} without a default to {_table(m[1])} fails"
        " on its existing rows"
    )


def _volatile_default(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(
        statement, rf"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})(.*)"
    )
    if m is None or _table(m[1]) in new:
        return None
    rest = m[3]
    default = re.search(r"\bDEFAULT\b(.*)", rest, re.IGNORECASE | re.DOTALL)
    if default is None or not _VOLATILE.search(default[1]):
        return None
    return (
        f"column {m[2]}'s volatile default rewrites all of {_table(m[1])} under an"
        " ACCESS EXCLUSIVE lock"
    )


def _type_change(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(
        statement,
        rf"(?:ALTER\s+(?:COLUMN\s+)?({_NAME})\s+(?:SET\s+DATA\s+)?TYPE\b|"
        rf"MODIFY\s+(?:COLUMN\s+)?({_NAME})\s)",
    )
    if m is None or _table(m[1]) in new:
        return None
    return (
        f"changing column {m[2] or m[3]}'s type rewrites {_table(m[1])} (and its"
        " indexes) under an exclusive lock"
    )


def _rename_column(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(
        statement,
        rf"(?:RENAME\s+(?:COLUMN\s+)?(?!TO\b)|CHANGE\s+(?:COLUMN\s+)?)({_NAME})",
    )
    if m is None or _table(m[1]) in new:
        return None
    return f"renaming column {m[2]} of {_table(m[1])} breaks the running code using it"


def _rename_table(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(statement, r"RENAME\s+TO\b") or re.match(
        rf"\s*RENAME\s+TABLE\s+{_QUALIFIED}", statement, re.IGNORECASE
    )
    if m is None or _table(m[1]) in new:
        return None
    return f"renaming table {_table(m[1])} breaks the running code using it"


def _drop_column(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(
        statement,
        r"DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?"
        rf"(?!(?:CONSTRAINT|INDEX|KEY|PRIMARY|FOREIGN|CHECK)\b)({_NAME})",
    )
    if m is None or _table(m[1]) in new:
        return None
    return (
        f"dropping column {m[2]} of {_table(m[1])} breaks the running code reading it"
    )


def _drop_table(statement: str, new: frozenset[str]) -> str | None:
    m = re.match(
        rf"\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_QUALIFIED}", statement, re.IGNORECASE
    )
    if m is None or _table(m[1]) in new:
        return None
    return f"dropping table {_table(m[1])} breaks the running code using it"


def _constraint_not_valid(statement: str, new: frozenset[str]) -> str | None:
    m = _alter(statement, rf"ADD\s+(?:CONSTRAINT\s+{_NAME}\s+)?(FOREIGN\s+KEY|CHECK)\b")
    if (
        m is None
        or _table(m[1]) in new
        or re.search(r"\bNOT\s+VALID\b", statement, re.I)
    ):
        return None
    kind = "foreign key" if m[2].upper().startswith("FOREIGN") else "check constraint"
    return (
        f"a {kind} added to {_table(m[1])} without NOT VALID scans the table while"
        " blocking its writes"
    )


def _timeout_off(statement: str, new: frozenset[str]) -> str | None:
    m = re.match(
        r"\s*SET\s+(?:LOCAL\s+|SESSION\s+)?(lock_timeout|statement_timeout)\s*(?:=|TO)"
        r"\s*'?0'?\s*;?\s*$",
        statement,
        re.IGNORECASE,
    )
    if m is None:
        return None
    return f"SET {m[1].lower()} = 0 turns the migration's {m[1].lower()} off"


RULES: tuple[Rule, ...] = (
    Rule(
        "index-not-concurrent",
        "build it with postgresql_concurrently=True inside"
        " op.get_context().autocommit_block()",
        _index_not_concurrent,
        frozenset({"postgresql"}),
    ),
    Rule(
        "not-null-without-default",
        "add it nullable, backfill in batches, then make it NOT NULL (or give it"
        " a server_default)",
        _not_null_without_default,
    ),
    Rule(
        "volatile-default",
        "add the column without a default, backfill in batches, then set the default",
        _volatile_default,
        frozenset({"postgresql"}),
    ),
    Rule(
        "column-type-change",
        "add a column of the new type, backfill it, switch the code, drop the old one",
        _type_change,
    ),
    Rule(
        "rename-column",
        "add the new column, write both, backfill, switch reads, drop the old one"
        " in a later release",
        _rename_column,
    ),
    Rule(
        "rename-table",
        "create the new table (or a view under the new name) and switch the code"
        " before removing the old name",
        _rename_table,
    ),
    Rule(
        "drop-column",
        "release code that no longer uses it first; drop it in a later revision",
        _drop_column,
    ),
    Rule(
        "drop-table",
        "release code that no longer uses it first; drop it in a later revision",
        _drop_table,
    ),
    Rule(
        "constraint-not-valid",
        "add it NOT VALID (postgresql_not_valid=True), then VALIDATE CONSTRAINT in"
        " a later transaction",
        _constraint_not_valid,
        frozenset({"postgresql"}),
    ),
    Rule(
        "missing-timeouts",
        "keep lock_timeout and statement_timeout on (alembic-recipes sets them per"
        " transaction); raise them instead of turning them off",
        _timeout_off,
    ),
)


def check_statements(statements: list[str], dialect: str) -> Iterator[Finding]:
    """Every rule of *dialect* broken by *statements* (one revision's)."""
    new = created_tables(statements)
    for statement in statements:
        for rule in RULES:
            if rule.dialects and dialect not in rule.dialects:
                continue
            message = rule.check(statement, new)
            if message is not None:
                yield Finding(rule.name, message, rule.fix, statement)
