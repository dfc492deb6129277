"""Fixtures: real database servers, temp projects driven through the ``alembic`` CLI.

* ``pg_url`` / ``mysql_url``: a throwaway database on the PostgreSQL / MariaDB
  server at ``ALEMBIC_RECIPES_PG_URL`` / ``ALEMBIC_RECIPES_MYSQL_URL``, dropped
  afterwards.  An unreachable server skips the test, except under ``CI=true``
  where it fails: CI must never silently skip a server.
* ``pg_cluster``: a PostgreSQL cluster of the test session's own (initdb +
  pg_ctl as the ``postgres`` OS user, on a free port, with
  ``max_prepared_transactions = 10``) where the shared server's settings get in
  the way; stopped and removed afterwards.  ``pg_second``: another one, per
  test, a second server the test may stop (:class:`Cluster`).
* ``pgbouncer``: PgBouncer in transaction mode in front of the shared
  PostgreSQL, on a free port; ``through(db)`` is *db*'s URL through it.
* ``project``: ``make(template, url=...)`` runs ``alembic init -t template`` in
  a temp dir and returns a :class:`Project` that runs ``alembic`` commands and
  edits revisions the way a user would.  Commands run Alembic's command line
  in this process (:func:`in_process`, 40 times faster than a new
  interpreter); tests marked ``console_script`` (``test_everyday``: every
  template's ordinary day) and runs that fork workers start the real console
  script, as do the concurrency and signal tests (:func:`spawn`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib
import io
import logging
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import alembic.config
import pytest
import sqlalchemy as sa
from alembic.config import CommandLine, Config
from alembic_recipes.configuration.option_table import option
from alembic_recipes.tenants.record import RECORD_TABLE
from sqlalchemy.engine import URL, make_url

PG_URL = os.environ.get(
    "ALEMBIC_RECIPES_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "ALEMBIC_RECIPES_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"
)
BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEADLINE = 120  # seconds for one batch of processes


def _unreachable(server: str, url: URL, exc: Exception) -> None:
    reason = (
        f"{server} at {url.render_as_string(hide_password=True)} is unreachable: "
        f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    )
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: server tests must run, not skip)")
    pytest.skip(reason)


@dataclass
class ServerDB:
    """A throwaway database on a real server, reachable through several drivers."""

    url: URL  # without driver: postgresql://... or mysql://...

    def driver_url(self, driver: str) -> str:
        backend = self.url.get_backend_name()
        return self.url.set(drivername=f"{backend}+{driver}").render_as_string(
            hide_password=False
        )

    def engine(self) -> sa.Engine:
        driver = "psycopg" if self.url.get_backend_name() == "postgresql" else "pymysql"
        return sa.create_engine(self.driver_url(driver), poolclass=sa.pool.NullPool)

    def drop_tenant_databases(self, names: Iterable[str]) -> None:
        """Drop the databases ``<this database>_<name>`` a per-tenant run made."""
        postgres = self.url.get_backend_name() == "postgresql"
        force = " WITH (FORCE)" if postgres else ""
        quote = "" if postgres else "`"
        with self.engine().connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in names:
                database = f"{quote}{self.url.database}_{name}{quote}"
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}{force}")


def _throwaway(base: str, driver: str, server: str) -> Iterator[ServerDB]:
    url = make_url(base)
    admin = sa.create_engine(
        url.set(drivername=f"{url.get_backend_name()}+{driver}"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    name = f"ar_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        _unreachable(server, url, exc)
    try:
        yield ServerDB(url.set(database=name))
    finally:
        force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


@pytest.fixture
def pg() -> Iterator[ServerDB]:
    """A throwaway PostgreSQL database."""
    yield from _throwaway(PG_URL, "psycopg", "PostgreSQL")


@pytest.fixture
def mysql() -> Iterator[ServerDB]:
    """A throwaway MariaDB/MySQL database."""
    yield from _throwaway(MYSQL_URL, "pymysql", "MariaDB")


def _tool(name: str) -> str | None:
    """*name* on PATH, else where Debian puts it (sbin, PostgreSQL's bin)."""
    extra = ["/usr/sbin", "/sbin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(extra))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of a test's own: initdb + pg_ctl as the
    ``postgres`` OS user, on a free port; :meth:`stop` / :meth:`start` it."""

    def __init__(self, settings: str = "") -> None:
        initdb, pg_ctl, runuser = _tool("initdb"), _tool("pg_ctl"), _tool("runuser")
        self.url = make_url("postgresql://postgres@127.0.0.1/postgres")
        if not initdb or not pg_ctl or (os.geteuid() == 0 and not runuser):
            missing = FileNotFoundError("initdb, pg_ctl or runuser not found")
            _unreachable("a PostgreSQL cluster of our own", self.url, missing)
        self.pg_ctl = str(pg_ctl)
        self.as_postgres = (
            [str(runuser), "-u", "postgres", "--"] if os.geteuid() == 0 else []
        )
        self.root = Path(tempfile.mkdtemp(prefix="ar-pg-"))
        self.root.chmod(0o755)
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        port = _free_port()
        self.options = (
            f"-p {port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.root} -c fsync=off {settings}"
        )
        self._run(initdb, "-D", f"{self.root}/data", "-A", "trust", "-U", "postgres",
                  "-N")  # fmt: skip
        self.start()
        self.url = self.url.set(port=port)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(
            [*self.as_postgres, *cmd], capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            _unreachable(
                "a PostgreSQL cluster of our own", self.url, RuntimeError(done.stderr)
            )

    def start(self) -> None:
        self._run(self.pg_ctl, "-D", f"{self.root}/data", "-o", self.options, "-w",
                  "-l", f"{self.root}/log", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop it at once (``-m immediate``): a server going down."""
        subprocess.run(
            [*self.as_postgres, self.pg_ctl, "-D", f"{self.root}/data", "-m",
             "immediate", "stop"], capture_output=True, timeout=60,
        )  # fmt: skip

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[URL]:
    """A throwaway PostgreSQL cluster with prepared transactions enabled."""
    cluster = Cluster("-c max_prepared_transactions=10")
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def pg_second() -> Iterator[Cluster]:
    """A second PostgreSQL server of this test's own, which it may stop."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Callable[[ServerDB], str]]:
    """PgBouncer (Debian's package) on a free port in front of the shared
    PostgreSQL, as it is commonly set up: ``pool_mode = transaction``,
    ``default_pool_size = 4``, every database passed through.  Yields
    ``through(db)``: a psycopg URL of *db* through the pooler."""
    binary = _tool("pgbouncer")
    server = make_url(PG_URL)
    if not binary:
        _unreachable("PgBouncer", server, FileNotFoundError("pgbouncer not found"))
    root = Path(tempfile.mkdtemp(prefix="ar-pgbouncer-"))
    root.chmod(0o777)  # it runs as the postgres OS user when we are root
    port = _free_port()
    (root / "users.txt").write_text(f'"{server.username}" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={server.host} port={server.port or 5432}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {root}/users.txt\n"
        "pool_mode = transaction\ndefault_pool_size = 4\n"
        f"logfile = {root}/log\npidfile = {root}/pid\n"
    )
    as_root = ["-u", "postgres"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [binary, "-d", *as_root, str(root / "pgbouncer.ini")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    try:
        if done.returncode:
            _unreachable("PgBouncer", server, RuntimeError(done.stderr))
        deadline = time.monotonic() + 30
        while True:  # it forks: wait until it answers
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                _unreachable(
                    "PgBouncer", server, TimeoutError((root / "log").read_text())
                )
            time.sleep(0.05)

        def through(db: ServerDB) -> str:
            return (
                make_url(db.driver_url("psycopg"))
                .set(port=port)
                .render_as_string(hide_password=False)
            )

        yield through
    finally:
        if (root / "pid").exists():
            pid = int((root / "pid").read_text())
            os.kill(pid, 15)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def advisory_locks(db: ServerDB) -> int:
    """Advisory locks held in *db* (PostgreSQL), by any session."""
    with db.engine().connect() as conn:
        q = (
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return int(conn.scalar(sa.text(q)) or 0)


def throwaway_on(server: URL) -> Iterator[ServerDB]:
    """A throwaway database on *server* (e.g. the ``pg_cluster``)."""
    yield from _throwaway(
        server.render_as_string(hide_password=False), "psycopg", "PostgreSQL"
    )


def cli_environment() -> dict[str, str]:
    """The environment of the ``alembic`` processes tests start: this venv's
    scripts first, and no bytecode written for project files -- a test that
    rewrites a revision file within the same second and at the same size would
    otherwise run its stale ``.pyc`` (installed packages are precompiled)."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


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


class _ConsoleScript:
    """Whether the running test is marked ``console_script`` (set by the
    autouse fixture below)."""

    on = False


CONSOLE_SCRIPT = _ConsoleScript()
# the options that fork worker processes when above 1 (-x keys; ini/toml keys)
_WORKER_OPTIONS = [option("fleet_workers"), option("server_workers")]
_WORKERS_ARG = re.compile(rf"(?:{'|'.join(str(o.x) for o in _WORKER_OPTIONS)})=(?!1$)")
_WORKERS_SET = re.compile(
    rf"^(?:{'|'.join(o.key for o in _WORKER_OPTIONS)}) *= *(?!1 *$)\S", re.M
)
# the warning filters of a new interpreter (pytest installs its own per test)
_FRESH_WARNING_FILTERS = list(warnings.filters)


@pytest.fixture(autouse=True)
def _console_script(request: pytest.FixtureRequest) -> Iterator[None]:
    CONSOLE_SCRIPT.on = request.node.get_closest_marker("console_script") is not None
    yield
    CONSOLE_SCRIPT.on = False


class _PrintingConfig(Config):
    """Alembic's ``Config`` printing to the ``sys.stdout`` of its creation
    (the class binds its default ``stdout`` when Alembic is imported)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stdout", sys.stdout)
        super().__init__(*args, **kwargs)


def _exit_code(code: object) -> tuple[int, str]:
    """The process exit status and stderr text ``sys.exit(code)`` gives."""
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code & 0xFF, ""
    return 1, f"{code}\n"


def in_process(root: Path, args: Sequence[str]) -> Result:
    """``alembic *args`` run in *root* by Alembic's command line in this
    process (``CommandLine().main``, what the console script calls), as a new
    interpreter would see it: its own stdout/stderr, exit status, traceback,
    warning filters and logging set-up; the project's modules (``models``,
    revision files) imported afresh and forgotten after; no bytecode written
    (a rewritten file may keep its size and second).  It saves the 0.4 s
    start-up of a new interpreter per run."""
    out, err = io.StringIO(), io.StringIO()
    modules, path = set(sys.modules), sys.path[:]
    logs = _LoggingState()
    logging.root.handlers[:] = []  # a new interpreter's: nothing configured yet
    logging.root.setLevel(logging.WARNING)
    code = 0
    importlib.invalidate_caches()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.chdir(root))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(warnings.catch_warnings())
        warnings.filters[:] = _FRESH_WARNING_FILTERS
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        stack.enter_context(
            mock.patch.object(alembic.config, "Config", _PrintingConfig)
        )
        stack.enter_context(mock.patch.dict(os.environ, cli_environment()))
        stack.enter_context(mock.patch.object(sys, "dont_write_bytecode", True))
        try:
            CommandLine(prog="alembic").main(argv=list(args))
        except SystemExit as exit:
            code, text = _exit_code(exit.code)
            err.write(text)
        except Exception:
            traceback.print_exc(file=err)
            code = 1
        finally:
            sys.path[:] = path
            logs.restore()
            for name in set(sys.modules) - modules:
                file = getattr(sys.modules[name], "__file__", None) or ""
                if file.startswith(str(root.parent)):
                    del sys.modules[name]
    return Result(code, out.getvalue(), err.getvalue())


class _LoggingState:
    """The logging configuration now, to put back after ``fileConfig`` (which
    env.py calls) replaced handlers, levels and disabled existing loggers."""

    def __init__(self) -> None:
        self.handlers = logging.root.handlers[:]
        self.level = logging.root.level
        self.loggers = {
            name: (logger.level, logger.handlers[:], logger.propagate, logger.disabled)
            for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        }

    def restore(self) -> None:
        logging.root.handlers[:] = self.handlers
        logging.root.setLevel(self.level)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            level, handlers, propagate, disabled = self.loggers.get(
                name, (logging.NOTSET, [], True, False)
            )
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.disabled = disabled


@dataclass
class Result:
    """What one ``alembic`` invocation did."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


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
        if any(_WORKERS_ARG.match(arg) for arg in args):
            return True
        files = (self.ini, self.root / "pyproject.toml")
        return any(f.exists() and _WORKERS_SET.search(f.read_text()) for f in files)

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


def tables(url: str) -> set[str]:
    """The tables of the database at *url* (but a fleet's run record, which
    tests of the record read themselves)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names()) - {RECORD_TABLE}


def versions(url: str) -> list[str]:
    """The ``alembic_version`` rows of the database at *url* (none: base)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return []
        return list(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))


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


_SERVER_MARKERS = {
    "pg": "postgresql",
    "pg_cluster": "postgresql",
    "pg_second": "postgresql",
    "pgbouncer": "postgresql",
    "mysql": "mysql",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Database markers follow the fixtures a test uses (directly or through
    another fixture), so ``-m "not postgresql"`` never runs a server test."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, marker in _SERVER_MARKERS.items():
            if fixture in fixtures:
                item.add_marker(marker)


def schema_dump(url: sa.URL, schema: str, database: str | None = None) -> list[str]:
    """``pg_dump --schema-only`` of *schema*, as lines comparable across
    schemas: the schema's name written ``public``, the run record left out."""
    done = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-n", schema,
         "-h", str(url.host), "-p", str(url.port or 5432), "-U", str(url.username),
         database or str(url.database)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = []
    for line in done.stdout.splitlines():
        if not line.strip() or line.startswith(
            ("--", "SET ", "\\", "COMMENT ON SCHEMA")
        ):
            continue
        if "set_config('search_path'" in line or "alembic_recipes_fleet_run" in line:
            continue
        line = re.sub(rf'\b"?{re.escape(schema)}"?\.', "public.", line)
        lines.append(line.replace(f"SCHEMA {schema}", "SCHEMA public"))
    return lines
