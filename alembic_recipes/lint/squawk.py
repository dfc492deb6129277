"""The squawk PostgreSQL linter (``pip install alembic-recipes[lint]``).

Each revision's SQL is one file, all checked by one ``squawk`` run.  Its
style rules stay off unless a project turns them on (``--squawk-include``);
rules a built-in one already covers are left to the built-in one, so one
problem is reported once, with the same name whether squawk is installed or
not.  Its timeout rules are left out too: the templates set the timeouts in
every transaction, outside the rendered SQL, and ``missing-timeouts`` checks
what could turn them off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alembic.util import CommandError

from ..database.errors import first_line
from .rules import Finding

__all__ = ["STYLE_RULES", "squawk_executable", "squawk_findings"]

STYLE_RULES = (
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
    "ban-char-field",
    "prefer-robust-stmts",
    "require-lock-timeout",
    "require-statement-timeout",
)
"""Off by default: style, and the timeouts the templates set themselves."""

COVERED = {
    "require-concurrent-index-creation": "index-not-concurrent",
    "adding-required-field": "not-null-without-default",
    "adding-field-with-default": "volatile-default",
    "changing-column-type": "column-type-change",
    "renaming-column": "rename-column",
    "renaming-table": "rename-table",
    "ban-drop-column": "drop-column",
    "ban-drop-table": "drop-table",
    "constraint-missing-not-valid": "constraint-not-valid",
    "adding-foreign-key-constraint": "constraint-not-valid",
}
"""squawk's rules a built-in rule reports already (squawk name -> ours)."""


def squawk_executable() -> str | None:
    """The ``squawk`` command beside this Python, or on the PATH."""
    beside = Path(sys.executable).with_name("squawk")
    return str(beside) if beside.exists() else shutil.which("squawk")


def squawk_findings(
    revisions: dict[str, list[str]], include: Iterable[str] = ()
) -> dict[str, list[Finding]]:
    """squawk's findings per revision id, for each revision's statements."""
    squawk = squawk_executable()
    if squawk is None or not revisions:
        return {}
    included = set(include)
    excluded = [r for r in (*STYLE_RULES, *COVERED) if r not in included]
    with tempfile.TemporaryDirectory(prefix="alembic-recipes-lint-") as tmp:
        paths: dict[str, str] = {}
        for revision, statements in revisions.items():
            path = Path(tmp) / f"{revision}.sql"
            path.write_text("".join(f"{s};\n" for s in statements))
            paths[str(path)] = revision
        args = [squawk, "--reporter", "json", f"--exclude={','.join(excluded)}"]
        if included:
            args.append(f"--include={','.join(sorted(included))}")
        done = subprocess.run(
            [*args, *paths], capture_output=True, text=True, check=False
        )
    reported = _reported(done)
    found: dict[str, list[Finding]] = {}
    for item in reported:
        name = paths.get(item.get("file", ""))
        if name is None:
            continue
        found.setdefault(name, []).append(
            Finding(
                f"squawk:{item.get('rule_name', '?')}",
                str(item.get("message", "")).rstrip("."),
                str(item.get("help") or "see squawk's documentation of this rule"),
            )
        )
    return found


def _reported(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """squawk's JSON report; ``CommandError`` when it failed (exit 1:
    findings; 2: squawk refused its arguments)."""
    try:
        reported = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except json.JSONDecodeError:
        reported = None
    if not isinstance(reported, list):
        first = first_line(done.stderr) or "no output"
        raise CommandError(f"squawk failed (exit {done.returncode}): {first}")
    return reported
