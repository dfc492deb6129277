"""Real database servers: throwaway databases on the shared PostgreSQL and
MariaDB, clusters and a PgBouncer of the test session's own, and reading what a
database holds.  An unreachable server skips the test, except under
``CI=true`` where it fails: CI must never silently skip a server."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic_recipes.tenants.records.record import RECORD_TABLE
from sqlalchemy.engine import URL, make_url

PG_URL = os.environ.get(
    "ALEMBIC_RECIPES_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


MYSQL_URL = os.environ.get(
    "ALEMBIC_RECIPES_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"
)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unreachable(server: str, url: URL, exc: Exception) -> None:
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


def throwaway(base: str, driver: str, server: str) -> Iterator[ServerDB]:
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
        unreachable(server, url, exc)
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
    yield from throwaway(PG_URL, "psycopg", "PostgreSQL")


@pytest.fixture
def mysql() -> Iterator[ServerDB]:
    """A throwaway MariaDB/MySQL database."""
    yield from throwaway(MYSQL_URL, "pymysql", "MariaDB")


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
            unreachable("a PostgreSQL cluster of our own", self.url, missing)
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
            unreachable(
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
        unreachable("PgBouncer", server, FileNotFoundError("pgbouncer not found"))
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
            unreachable("PgBouncer", server, RuntimeError(done.stderr))
        deadline = time.monotonic() + 30
        while True:  # it forks: wait until it answers
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                unreachable(
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
    yield from throwaway(
        server.render_as_string(hide_password=False), "psycopg", "PostgreSQL"
    )


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


def schema_dump(
    url: sa.URL, schema: str, database: str | None = None, *, privileges: bool = False
) -> list[str]:
    """``pg_dump --schema-only`` of *schema*, as lines comparable across
    schemas: the schema's name written ``public``, the run record left out
    (*privileges*: with its grants)."""
    grants = [] if privileges else ["--no-privileges"]
    done = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", *grants, "-n", schema,
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


def waiting_for_locks(db: ServerDB) -> int:
    """Sessions of *db*'s database waiting for a lock."""
    q = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )
    with db.engine().connect() as conn:
        return int(conn.scalar(sa.text(q)) or 0)
