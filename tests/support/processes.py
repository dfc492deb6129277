"""Real ``alembic`` processes: the console script started, several at once, on
a pseudo-terminal, and what one run did (:class:`Result`)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .projects import Project


BIN = Path(sys.executable).parent


DEADLINE = 120  # seconds for one batch of processes


def cli_environment() -> dict[str, str]:
    """The environment of the ``alembic`` processes tests start: this venv's
    scripts first, and no bytecode written for project files -- a test that
    rewrites a revision file within the same second and at the same size would
    otherwise run its stale ``.pyc`` (installed packages are precompiled)."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Result:
    """What one ``alembic`` invocation did."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def spawn(
    proj: Project,
    *args: str,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """Start ``alembic *args`` in *proj* without waiting for it (*env*: the
    whole environment, default :func:`cli_environment`; *new_session*: in a
    process group of its own, as a terminal's foreground job, so that
    ``os.killpg`` reaches it and its workers as a terminal's Ctrl-C would)."""
    env = env or cli_environment()
    return subprocess.Popen(
        [str(BIN / "alembic"), *args],
        cwd=proj.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=new_session,
    )


def on_terminal(proj: Project, *args: str, columns: int = 160) -> Result:
    """Run ``alembic *args`` in *proj* on a real pseudo-terminal (*columns*
    wide, as a person's terminal is): what it wrote there, as a person saw it
    (both streams, carriage returns and all)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [str(BIN / "alembic"), *args],
        cwd=proj.root,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_environment(),
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    code = process.wait(timeout=DEADLINE)
    return Result(code, seen.decode(errors="replace"), "")


def together(proj: Project, count: int, *args: str) -> list[Result]:
    """Start *count* identical ``alembic`` processes at once; wait for all."""
    processes = [spawn(proj, *args) for _ in range(count)]
    runs = []
    for process in processes:
        out, err = process.communicate(timeout=DEADLINE)
        runs.append(Result(process.returncode, out, err))
    return runs


def recipes(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m alembic_recipes *args`` (in *cwd*, a project), as a user
    runs it: its exit code and both streams."""
    return subprocess.run(
        [sys.executable, "-m", "alembic_recipes", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=cli_environment(),
        timeout=timeout,
    )


def until(check: Callable[[], bool], what: str) -> None:
    """Wait for *check* to hold (polling), at most :data:`DEADLINE` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
