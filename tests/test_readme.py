"""The README's copy-paste snippets run as written."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from pathlib import Path

from support.processes import BIN

README = Path(__file__).resolve().parent.parent / "README.md"


def bash_block(after: str) -> str:
    """The first ```bash block after the heading *after*."""
    text = README.read_text()
    start = text.index(after)
    return str(re.findall(r"```bash\n(.*?)```", text[start:], re.S)[0])


def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", bash_block("## Quickstart")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("[(1, 'acme')]")
    assert "Data migrations pending for 1 revision(s)" in done.stderr
    assert "Running data upgrade (catch-up)" in done.stderr
    down = subprocess.run(
        [BIN / "alembic", "downgrade", "base"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "Running downgrade" in down.stderr
    with sqlite3.connect(tmp_path / "app.db") as db:  # the quickstart's table is gone
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "customer" not in names
