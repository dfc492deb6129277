"""Temp projects made by ``alembic init -t TEMPLATE``, edited the way a user
edits them (ini options, revision bodies, models)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .harness import CONSOLE_SCRIPT, WORKERS_ARG, WORKERS_SET, in_process
from .processes import BIN, Result, cli_environment


def set_ini_option(ini: Path, key: str, value: str, section: str = "alembic") -> None:
    """Set ``key = value`` in *section* of the ini file *ini*, editing its text
    as a user would (a commented ``# key = ...`` line is uncommented; a
    missing section is added at the end)."""
    text = ini.read_text()
    pattern = re.compile(rf"^#? ?{re.escape(key)} = .*$", re.M)
    if f"[{section}]" not in text:  # a new section, at the end
        text = text.rstrip("\n") + f"\n\n[{section}]\n"
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end == -1 else end
    body = text[start:end]
    if pattern.search(body):
        body = pattern.sub(lambda _: f"{key} = {value}", body, count=1)
    else:
        body = body.rstrip("\n") + f"\n{key} = {value}\n\n"
    ini.write_text(text[:start] + body + text[end:])


class Project:
    """A temp project made by ``alembic init -t TEMPLATE migrations``."""

    def __init__(self, root: Path, template: str) -> None:
        self.root = root
        self.template = template
        self.ini = root / "alembic.ini"
        self.versions = root / "migrations" / "versions"
        self.env_py = root / "migrations" / "env.py"
        self.prepared: Any = None

    def alembic(
        self, *args: str, ok: bool | None = True, process: bool | None = None
    ) -> Result:
        """Run ``alembic *args`` in the project directory.

        ``ok=True`` asserts exit 0, ``ok=False`` asserts a failure, ``None``
        asserts nothing.  *process*: ``True`` starts the real console script,
        ``False`` runs Alembic's command line in this process
        (:func:`in_process`); ``None`` chooses: the console script for tests
        marked ``console_script`` and for runs that fork workers, in-process
        otherwise.
        """
        if process is None:
            process = CONSOLE_SCRIPT.on or self._forks_workers(args)
        if process:
            done = subprocess.run(
                [str(BIN / "alembic"), *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                env=cli_environment(),
                timeout=120,
            )
            result = Result(done.returncode, done.stdout, done.stderr)
        else:
            result = in_process(self.root, args)
        if ok is True:
            assert result.code == 0, (
                f"alembic {' '.join(args)} failed:\n{result.output}"
            )
        elif ok is False:
            assert result.code != 0, (
                f"alembic {' '.join(args)} succeeded:\n{result.output}"
            )
        return result

    def _forks_workers(self, args: tuple[str, ...]) -> bool:
        """Whether the run may fork worker processes: a fork needs a process
        with one thread, which a pytest-xdist worker is not."""
        if any(WORKERS_ARG.match(arg) for arg in args):
            return True
        files = (self.ini, self.root / "pyproject.toml")
        return any(f.exists() and WORKERS_SET.search(f.read_text()) for f in files)

    def set_option(self, key: str, value: str, section: str = "alembic") -> None:
        """Set ``key = value`` in an ini section, editing the text like a user."""
        set_ini_option(self.ini, key, value, section)

    def revision(self, message: str, **bodies: str) -> str:
        """``alembic revision -m message``, then fill function bodies.

        Keyword arguments name functions of the generated file
        (``upgrade``, ``schema_upgrades``, ``data_upgrades`` ...); their code
        replaces the ``pass``.  Returns the revision id.

        A revision is a test's setup, not what it tests: it runs in this
        process (``--autogenerate`` in ``console_script`` tests excepted).
        ``test_everyday`` drives ``alembic revision`` through the console
        script, for every template.
        """
        extra = bodies.pop("args", "")
        before = set(self.root.rglob("*.py"))
        argv = ["revision", "-m", message, *extra.split()]
        self.alembic(*argv, process=CONSOLE_SCRIPT.on and "--autogenerate" in argv)
        (path,) = set(self.root.rglob("*.py")) - before
        text = path.read_text()
        for name, code in bodies.items():
            text = set_body(text, name, code)  # op and sa: imported by the template
        path.write_text(text)
        return re.findall(r'^revision: str = ["\x27](\w+)', text, re.M)[0]

    def revision_file(self, revision: str) -> Path:
        return next(self.versions.glob(f"{revision}_*.py"))


def use_models(proj: Project) -> None:
    """Point the project's env.py at ``models.metadata`` (a models.py the test
    writes in the project directory): per database for multidb-mixed."""
    text = proj.env_py.read_text()
    if proj.template.startswith("multidb-mixed"):
        new = text.replace(
            "target_metadata: dict[str, MetaData] = {}",
            "from models import metadata as md\n\n"
            'target_metadata = {"main": md, "analytics": md}',
        )
    else:
        new = text.replace(
            "target_metadata = None", "from models import metadata as target_metadata"
        )
    assert new != text, "env.py has no target_metadata placeholder"
    proj.env_py.write_text(new)


def autogenerate_two(proj: Project, models: str, more: str, *args: str) -> None:
    """Two autogenerated revisions ``customers`` and ``lines``: from a
    models.py holding *models*, then *models* + *more* (upgraded in between);
    *args* go before each command (``-x tenant=acme``)."""
    path = proj.root / "models.py"
    path.write_text(models)
    proj.alembic(*args, "revision", "--autogenerate", "-m", "customers")
    proj.alembic(*args, "upgrade", "head")
    path.write_text(models + more)
    proj.alembic(*args, "revision", "--autogenerate", "-m", "lines")


def assert_ruff_clean(path: Path) -> None:
    """``ruff check`` and ``ruff format --check`` pass on a generated file, run
    from the user's project directory with ruff's default settings."""
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--isolated", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"ruff {args[0]}:\n{done.stdout}{done.stderr}"


def set_body(text: str, function: str, code: str) -> str:
    """Replace the body (after its docstring) of ``def function()`` in *text*."""
    pattern = re.compile(
        rf'(^def {function}\(\) -> None:\n    """.*?"""\n)(    pass\n)?', re.M | re.S
    )
    body = "".join(f"    {line}\n" for line in code.strip("\n").splitlines())
    new, count = pattern.subn(lambda m: m.group(1) + body, text, count=1)
    assert count == 1, f"no function {function} in revision"
    return new


@pytest.fixture(scope="session")
def _project_cache(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, Any]]:
    return {}


@pytest.fixture
def project(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    _project_cache: dict[str, tuple[Path, Any]],
) -> Callable[..., Project]:
    """Factory: ``project("data-flag", url=...)`` -> an initialised :class:`Project`.

    ``alembic init -t TEMPLATE`` (plus an optional *prepare* step writing
    revisions, cached under *key*) runs once per test session; each test gets
    its own copy, so tests stay independent without paying for the CLI
    start-up again.  The copy's ``prepared`` attribute holds what *prepare*
    returned.
    """

    def make(
        template: str,
        url: str | None = None,
        name: str = "app",
        prepare: Callable[[Project], Any] | None = None,
        key: str | None = None,
    ) -> Project:
        cache_key = f"{template}:{key or (prepare.__name__ if prepare else '')}"
        if cache_key not in _project_cache:
            seed = tmp_path_factory.mktemp("seed") / name
            seed.mkdir()
            proj = Project(seed, template)
            proj.alembic("init", "-t", template, "migrations")
            extra = prepare(proj) if prepare else None
            _project_cache[cache_key] = (seed, extra)
        seed, extra = _project_cache[cache_key]
        root = tmp_path / name
        shutil.copytree(
            seed, root, ignore=shutil.ignore_patterns("__pycache__", "*.db")
        )
        text = (root / "alembic.ini").read_text().replace(str(seed), str(root))
        (root / "alembic.ini").write_text(text)
        proj = Project(root, template)
        proj.prepared = extra
        if url is not None:
            proj.set_option("sqlalchemy.url", url)
        return proj

    return make


# -- helpers shared by the test modules ----------------------------------------
def add_database(proj: Project, name: str, url: str) -> None:
    """Add *name* to ``databases`` and a ``[name]`` section with its URL."""
    text = proj.ini.read_text()
    current = re.search(r"^databases = (.*)$", text, re.M)
    assert current is not None
    text = text.replace(current.group(0), f"databases = {current.group(1)}, {name}")
    text = text.replace(
        "[post_write_hooks]", f"[{name}]\nsqlalchemy.url = {url}\n\n[post_write_hooks]"
    )
    proj.ini.write_text(text)
