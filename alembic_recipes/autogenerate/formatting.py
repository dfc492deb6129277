"""Post-write hook: revision files come out ``ruff format``-ted when ruff is installed.

The templates' ``alembic.ini`` enables it::

    [post_write_hooks]
    hooks = format
    format.type = alembic_recipes_ruff

Unlike Alembic's ``exec``/``module`` hooks it does not fail ``alembic revision``
where ruff is not installed: the file is kept as written, and a line printed
under Alembic's own ``Running post write hook`` says so.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Mapping

from alembic.script import write_hooks
from alembic.util import CommandError, msg

__all__ = ["HOOK_NAME", "ruff_format"]

HOOK_NAME = "alembic_recipes_ruff"


def _ruff_command() -> list[str] | None:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


@write_hooks.register(HOOK_NAME)
def ruff_format(filename: str, options: Mapping[str, str]) -> None:
    """Run ``ruff format`` (with the project's ruff settings) on *filename*."""
    ruff = _ruff_command()
    if ruff is None:
        # printed, as Alembic prints the hook's own lines: no logging is
        # configured when `alembic revision` runs without env.py
        msg(
            f"  ruff is not installed: {filename} is left as generated, not"
            " formatted (pip install ruff to format revision files)"
        )
        return
    done = subprocess.run(
        [*ruff, "format", "--quiet", filename], capture_output=True, text=True
    )
    if done.returncode:
        raise CommandError(f"ruff format failed on {filename}: {done.stderr.strip()}")
