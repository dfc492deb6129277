"""Every example in the documentation runs -- or, for an excerpt, parses.

Each page under ``docs/`` runs in a fresh directory, its code blocks in order,
its shell commands in **one bash session**, as when a reader pastes them into
one terminal: a ``cd`` or an ``export`` carries over to the next command, and
``!`` history expansion is on, as in an interactive bash (so ``"tenant=all,!t2"``
fails as it would there).  Files a page writes or edits go where that session
is.  An HTML comment on the line before a block (invisible on the site) says
what to do with it:

* ``<!-- example: run -->`` -- run it (the default for ``bash`` and
  ``console``; for ``python``: ``python -`` where the session is);
* ``<!-- example: file PATH -->`` -- write it to PATH (later blocks use it);
* ``<!-- example: set PATH -->`` -- an ini excerpt: set each of its options in
  the ini file PATH, as a user edits it (commented stock lines uncommented);
* ``<!-- example: excerpt -->`` -- part of a larger file, or commands that
  need what a page cannot set up (``nox`` itself, a server of yours): only
  parsed (``bash -n``, ``compile()``, configparser, tomllib, YAML), and what
  a Python excerpt takes from ``alembic_recipes`` must exist; the default
  for ``python``, ``ini``, ``toml`` and ``yaml``.

``console`` blocks hold ``$ command`` lines, each followed by the output it
shows, compared with what the command prints (stdout and stderr, as a terminal
shows them): a line ``...`` stands for any number of lines, ``...`` within a
line for any text, and revision ids are compared as ids.  A command whose
shown output has a ``FAILED:`` line or a traceback must fail.  ``pip
install`` lines are skipped: the test session has the package installed.

A page whose first line is ``<!-- examples: postgresql -->`` runs against a
throwaway database: the page's URL ``postgresql://postgres@127.0.0.1:5432/app``
(with any driver) is replaced by it.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import alembic_recipes
import pytest
import yaml
from support.processes import cli_environment
from support.projects import set_ini_option
from support.servers import ServerDB

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE_URL = re.compile(r"postgresql(?P<driver>\+\w+)?://postgres@127\.0\.0\.1:5432/app")
FENCE = re.compile(  # at the margin or indented in a list item
    r"^(?:[ ]*<!-- example: (?P<directive>[^>]*?) -->\n)?"
    r"(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$",
    re.M | re.S,
)
RUN_BY_DEFAULT = ("bash", "console")
FAILURES = ("FAILED:", "Traceback (most recent call last):")
REVISION = re.compile(r"\b[0-9a-f]{12}\b")
TIMEOUT = 300


@dataclass
class Block:
    page: str
    line: int
    lang: str
    directive: str
    body: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(
            page.relative_to(DOCS).as_posix(),
            text.count("\n", 0, m.start("body")),
            m.group("lang"),
            (m.group("directive") or "").strip(),
            textwrap.dedent(m.group("body")),
        )
        for m in FENCE.finditer(text)
    ]


def _pages() -> list[object]:
    params: list[object] = []
    for page in sorted(DOCS.rglob("*.md")):
        if not blocks(page):
            continue
        name = page.relative_to(DOCS).as_posix()
        marks = []
        if page.read_text().startswith("<!-- examples: postgresql -->"):
            marks.append(pytest.mark.postgresql)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _excerpt(block: Block) -> None:
    """An excerpt parses in its language."""
    if block.lang == "python":
        tree = compile(
            block.body,
            block.where,
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST,
        )
        _our_names_exist(tree, block)
    elif block.lang in ("bash", "console"):
        commands = block.body
        if block.lang == "console":
            commands = "\n".join(
                line[2:] for line in commands.splitlines() if line.startswith("$ ")
            )
        done = subprocess.run(
            ["bash", "-n"], input=commands, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{block.where}: {done.stderr}"
    elif block.lang == "ini":
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(block.body, source=block.where)
    elif block.lang == "toml":
        tomllib.loads(block.body)
    elif block.lang in ("yaml", "yml"):
        yaml.safe_load(block.body)
    elif block.lang not in ("text", ""):
        raise AssertionError(
            f"{block.where}: no check for an excerpt in {block.lang!r}"
        )


def _our_names_exist(tree: ast.AST, block: Block) -> None:
    """What an excerpt imports from alembic_recipes (and the attributes it
    uses of ``alembic_recipes``) exists: an excerpt cannot name a function
    that was renamed or removed."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "alembic_recipes"
        ):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"{block.where}: {node.module} has no {alias.name}"
                )
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "alembic_recipes"
        ):
            assert hasattr(alembic_recipes, node.attr), (
                f"{block.where}: alembic_recipes has no {node.attr}"
            )


class Session:
    """One bash reading what a reader pastes, as an interactive one would:
    history expansion on, state kept from one command to the next.  Each
    command's stdin is /dev/null, its output (stdout and stderr, as a
    terminal shows them) read up to a marker with its exit status and the
    session's directory."""

    MARK = "__docs_session_done__"

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self._out = b""
        self._more = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        # an interactive shell's history expansion; a failure anywhere in a
        # pasted block is said (a terminal shows it; -e would end the session)
        self.run("set -o history -o histexpand -o pipefail")
        self.run(f"trap 'echo \"{self.MARK}_error $?: $BASH_COMMAND\"' ERR")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            with self._more:
                self._out += chunk
                self._more.notify()
        with self._more:
            self._out += f"\n{self.MARK} 255 (the shell ended)\n".encode()
            self._more.notify()

    def run(self, command: str) -> tuple[int, str]:
        """Run *command* (one line or a pasted block); its status and output."""
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return 255, "(the shell has ended)"
        self.proc.stdin.write(
            f"{{\n{command}\n}} < /dev/null\n"
            f'printf \'\\n{self.MARK} %d %s\\n\' "$?" "$PWD"\n'.encode()
        )
        try:
            self.proc.stdin.flush()
        except BrokenPipeError:  # the shell ended: its last words are read
            pass
        done = re.compile(rf"\n{self.MARK} (\d+) (.*)\n".encode())
        deadline = time.monotonic() + TIMEOUT
        with self._more:
            while (found := done.search(self._out)) is None:
                left = deadline - time.monotonic()
                assert left > 0, f"`{command}` still running after {TIMEOUT} s"
                self._more.wait(left)
            printed = self._out[: found.start()].decode(errors="replace")
            self._out = self._out[found.end() :]
        self.cwd = Path(found[2].decode())
        return int(found[1]), printed

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _failures_in(printed: str) -> list[str]:
    """Lines of *printed* a pasted block should not have shown: a command
    that failed inside it, ``!`` taken for history."""
    return [
        line
        for line in printed.splitlines()
        if line.startswith(f"{Session.MARK}_error") or "event not found" in line
    ]


def _said(printed: str) -> str:
    """*printed* as a terminal shows it: without the session's ERR lines."""
    return "\n".join(
        line
        for line in printed.splitlines()
        if not line.startswith(f"{Session.MARK}_error")
    )


def matches(shown: list[str], printed: list[str]) -> bool:
    """*printed* lines fit the *shown* ones (``...`` wildcards, ids as ids)."""
    if not shown:
        return not printed
    first, rest = shown[0], shown[1:]
    if first == "...":
        return any(matches(rest, printed[i:]) for i in range(len(printed) + 1))
    if not printed:
        return False
    line = REVISION.sub("<rev>", printed[0].rstrip())
    want = REVISION.sub("<rev>", first.rstrip())
    pattern = ".*".join(re.escape(part) for part in want.split("..."))
    return bool(re.fullmatch(pattern, line)) and matches(rest, printed[1:])


def _console(block: Block, session: Session) -> None:
    """Run each ``$ command`` and compare its output with the lines shown."""
    commands: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    assert commands, f"{block.where}: a console block without `$ ` commands"
    for command, shown in commands:
        if command.startswith("pip install"):
            continue
        code, raw = session.run(command)
        printed = _said(raw)
        failing = any(line.startswith(FAILURES) for line in shown)
        assert (code != 0) == failing, (
            f"{block.where}: `{command}` exit {code}\n{printed}"
        )
        assert "event not found" not in printed, f"{block.where}: {printed}"
        assert matches(shown, printed.splitlines()), (
            f"{block.where}: `{command}` printed\n{printed}\nbut the page shows\n"
            + "\n".join(shown)
        )


def run_page(name: str, cwd: Path, url: str | None) -> None:
    # stdout line by line, as on a terminal, so it interleaves with the logs
    env = {**cli_environment(), "PYTHONUNBUFFERED": "1"}
    start = cwd / "work"  # an empty directory; a page may make one beside it
    start.mkdir()
    session = Session(start, env)
    try:
        for block in blocks(DOCS / name):
            body = block.body
            if url:
                body = PAGE_URL.sub(
                    lambda m: url.replace("postgresql", m[0].split(":")[0], 1), body
                )
            block = Block(block.page, block.line, block.lang, block.directive, body)
            _run_block(block, session, env)
    finally:
        session.close()


def _run_block(block: Block, session: Session, env: dict[str, str]) -> None:
    kind, _, argument = block.directive.partition(" ")
    here = session.cwd  # where the reader is now
    if kind == "set":
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(block.body, source=block.where)
        for section in parser.sections():
            for key, value in parser.items(section, raw=True):
                set_ini_option(here / argument, key, value, section)
    elif kind == "file":
        path = here / argument
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.body)
    elif kind == "excerpt" or (not kind and block.lang not in RUN_BY_DEFAULT):
        _excerpt(block)
    elif block.lang == "console":
        _console(block, session)
    elif block.lang == "bash":
        code, printed = session.run(block.body)
        failed = _failures_in(printed)
        assert code == 0 and not failed, f"{block.where}: exit {code}\n{printed}"
    elif block.lang == "python":
        done = subprocess.run(
            [sys.executable, "-"], input=block.body, cwd=here, env=env,
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert done.returncode == 0, f"{block.where}:\n{done.stderr}"
    else:
        raise AssertionError(f"{block.where}: cannot run a {block.lang!r} block")


@pytest.mark.docs
@pytest.mark.parametrize("page", _pages())
def test_every_example_runs(
    page: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None
    if (DOCS / page).read_text().startswith("<!-- examples: postgresql -->"):
        server: ServerDB = request.getfixturevalue("pg")
        url = server.url.render_as_string(hide_password=False)
    run_page(page, tmp_path, url)


def test_every_block_is_run_or_parsed() -> None:
    """No block escapes: every fence is a block's, every directive is known,
    every language handled."""
    for page in DOCS.rglob("*.md"):
        fences = re.findall(r"^[ ]*```", page.read_text(), re.M)
        assert len(fences) == 2 * len(blocks(page)), f"docs/{page}: a fence not read"
        for block in blocks(page):
            kind = block.directive.partition(" ")[0]
            assert kind in ("", "run", "file", "set", "excerpt"), block.where
            assert block.lang in (
                "bash",
                "console",
                "python",
                "ini",
                "toml",
                "yaml",
                "text",
            ), f"{block.where}: a block needs a language ({block.lang!r})"


def test_matching_rules() -> None:
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert matches(["Running upgrade  -> 1a2b3c4d5e6f, first"],
                   ["Running upgrade  -> 0123456789ab, first"])  # fmt: skip
    assert matches(["async-shared - Async ..."], ["async-shared - Async engines"])
    assert matches(["Creating directory .../migrations ...  done"],
                   ["Creating directory /tmp/x/migrations ...  done"])  # fmt: skip
    assert not matches(["a"], ["a", "b"])
    assert not matches(["a", "...", "z"], ["a", "b"])


def test_a_page_runs_as_one_terminal_session(tmp_path: Path) -> None:
    """State carries over; ``!`` in double quotes fails as in an interactive
    bash; a failure inside a pasted block is seen; output as printed."""
    session = Session(tmp_path, {**cli_environment()})
    try:
        assert session.run("mkdir sub && cd sub && export SEEN=1") == (0, "")
        assert session.run("pwd; echo $SEEN") == (0, f"{tmp_path / 'sub'}\n1\n")
        assert session.cwd == tmp_path / "sub"
        code, printed = session.run("echo 'tenant=all,!t2'")
        assert (code, printed) == (0, "tenant=all,!t2\n")
        code, printed = session.run("false\necho after")
        assert code == 0 and _failures_in(printed) and _said(printed) == "after"
        # (a terminal's bash goes on after this; a piped one ends: the page fails)
        code, printed = session.run('echo "tenant=all,!t2"')
        assert "event not found" in printed and "tenant=all" not in printed
    finally:
        session.close()
