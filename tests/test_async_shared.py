"""async-shared template: CLI and in-process runs on aiosqlite and asyncpg."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import alembic_recipes
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from alembic_recipes.database.locks import LOCK_FILE_SUFFIX, lock_key
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from support.processes import cli_environment
from support.projects import Project, assert_ruff_clean
from support.servers import ServerDB


def _account_revision(proj: Project) -> str:
    return proj.revision(
        "account",
        upgrade=(
            'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))'
        ),
        downgrade='op.drop_table("account")',
    )


@dataclass
class Async:
    """An async-shared project, its async URL, and a sync view of its database."""

    proj: Project
    url: str  # async URL (aiosqlite / asyncpg)
    sync_url: str  # same database through a sync driver
    rev: str

    def config(self, **attributes: Any) -> Config:
        cfg = Config(str(self.proj.ini))
        cfg.attributes["configure_logger"] = False
        cfg.attributes.update(attributes)
        return cfg

    def tables(self) -> set[str]:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    def versions(self) -> list[str]:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return list(
                conn.scalars(sa.text("SELECT version_num FROM alembic_version"))
            )

    def async_engine(self) -> AsyncEngine:
        engine = create_async_engine(self.url, poolclass=sa.pool.NullPool)
        if engine.dialect.name == "sqlite":
            alembic_recipes.transactional_sqlite(engine)
        return engine

    def sync_engine(self) -> sa.Engine:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        if engine.dialect.name == "sqlite":
            alembic_recipes.transactional_sqlite(engine)
        return engine


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def a(
    request: pytest.FixtureRequest,
    project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Async:
    # in-process runs start in the project directory, as applications do
    if request.param == "sqlite":
        proj = project("async-shared", prepare=_account_revision)
        monkeypatch.chdir(proj.root)
        db = tmp_path / "app" / "app.db"
        return Async(
            proj, f"sqlite+aiosqlite:///{db}", f"sqlite:///{db}", proj.prepared
        )
    server: ServerDB = request.getfixturevalue("pg")
    url = server.driver_url("asyncpg")
    proj = project("async-shared", url=url, prepare=_account_revision)
    monkeypatch.chdir(proj.root)
    return Async(proj, url, server.driver_url("psycopg"), proj.prepared)


def test_cli_upgrade_downgrade(a: Async) -> None:
    out = a.proj.alembic("upgrade", "head").stderr
    assert f"INFO  [alembic.runtime.migration] Running upgrade  -> {a.rev}" in out
    assert "account" in a.tables() and a.versions() == [a.rev]
    a.proj.alembic("downgrade", "base")
    assert "account" not in a.tables() and a.versions() == []


def test_cli_sync_url_works_too(a: Async) -> None:
    a.proj.set_option("sqlalchemy.url", a.sync_url)
    a.proj.alembic("upgrade", "head")
    assert a.versions() == [a.rev]


def test_cli_failure_leaves_nothing_half_applied(a: Async) -> None:
    a.proj.revision("broken", upgrade='op.execute("SELECT * FROM no_such_table")')
    a.proj.alembic("upgrade", "head", ok=False)
    assert a.versions() == [] and "account" not in a.tables()


def test_offline_with_async_url_opens_no_connection(a: Async) -> None:
    dead = re.sub(r"@[^/]+/", "@127.0.0.1:1/", a.url) if "@" in a.url else a.url
    a.proj.set_option("sqlalchemy.url", dead)
    out = a.proj.alembic("upgrade", "head", "--sql").stdout
    assert "CREATE TABLE account" in out
    assert "account" not in a.tables()


def test_autogenerate_with_async_url(a: Async) -> None:
    a.proj.alembic("upgrade", "head")
    (a.proj.root / "models.py").write_text(
        "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
        'sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
        'sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
    )
    text = a.proj.env_py.read_text().replace(
        "target_metadata = None", "from models import metadata as target_metadata"
    )
    a.proj.env_py.write_text(text)
    out = a.proj.alembic("revision", "--autogenerate", "-m", "invoice").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    generated = path.read_text()
    assert 'op.create_table(\n        "invoice"' in generated
    assert '"account"' not in generated
    assert_ruff_clean(path)
    a.proj.alembic("upgrade", "head")
    assert "invoice" in a.tables()


def test_programmatic_from_sync_code(a: Async) -> None:
    command.upgrade(a.config(), "head")
    assert a.versions() == [a.rev]
    command.downgrade(a.config(), "base")
    assert a.versions() == []


def test_sync_command_inside_asyncio_run(a: Async) -> None:
    """alembic #1353: command.upgrade() from a coroutine must migrate, not crash."""

    async def main() -> None:
        command.upgrade(a.config(), "head")
        assert a.versions() == [a.rev]  # applied before it returned

    asyncio.run(main())


def test_awaitable_upgrade_inside_asyncio_run(a: Async) -> None:
    async def main() -> tuple[str, ...]:
        engine = a.async_engine()
        try:
            await alembic_recipes.upgrade_async(engine, a.config())
            return await alembic_recipes.current_async(engine, a.config())
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == (a.rev,)
    assert "account" in a.tables()


HOLD = """
import sys, time
if sys.argv[1] == "sqlite":
    from filelock import FileLock
    lock = FileLock(sys.argv[2])
    lock.acquire()
else:
    import psycopg
    conn = psycopg.connect(sys.argv[2], autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (int(sys.argv[3]),))
print("held", flush=True)
time.sleep(float(sys.argv[4]))
"""


def _hold_the_lock(a: Async, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the migration lock for *seconds* (a replica
    migrating at start-up), once it holds it."""
    url = sa.make_url(a.sync_url)
    if url.drivername.startswith("sqlite"):
        args = ["sqlite", f"{url.database}{LOCK_FILE_SUFFIX}", "0"]
    else:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        args = ["pg", plain, str(lock_key(url.database or "", None))]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, *args, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_environment(),
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_waiting_for_the_lock_leaves_the_event_loop_free(a: Async) -> None:
    """Another process holds the migration lock for 1.5 s: ``upgrade_async``
    waits on the application's event loop -- a task ticking every 20 ms
    keeps ticking meanwhile -- then migrates once the lock is free."""
    holder = _hold_the_lock(a, 1.5)
    released = time.monotonic() + 1.5

    async def main() -> tuple[list[float], float]:
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        ticker = asyncio.create_task(tick())
        engine = a.async_engine()
        try:
            await alembic_recipes.upgrade_async(engine, a.config())
            done = time.monotonic()
        finally:
            ticker.cancel()
            await engine.dispose()
        return ticks, done

    ticks, done = asyncio.run(main())
    holder.wait(timeout=30)
    assert done >= released - 0.1  # it waited for the other process
    assert a.versions() == [a.rev]
    # the last second of the wait: a tick every 20 ms (blocked: one per poll)
    waiting = [t for t in ticks if released - 1.0 <= t < released]
    assert len(waiting) >= 20, len(waiting)


def test_lifespan_shaped_startup_hook(a: Async) -> None:
    """What a FastAPI/Starlette lifespan does: migrate, then serve."""
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        engine = a.async_engine()
        await alembic_recipes.upgrade_async(engine, a.config())
        events.append("migrated")
        yield
        await engine.dispose()

    async def serve() -> None:
        async with lifespan(object()):
            events.append("serving")
            assert a.versions() == [a.rev]

    asyncio.run(serve())
    assert events == ["migrated", "serving"]


@pytest.mark.asyncio
async def test_under_pytest_asyncio_loop(a: Async) -> None:
    command.upgrade(a.config(), "head")  # sync call on pytest-asyncio's loop
    assert a.versions() == [a.rev]
    engine = a.async_engine()
    await alembic_recipes.downgrade_async(engine, a.config(), "base")
    await alembic_recipes.stamp_async(engine, a.config(), "head")
    assert await alembic_recipes.current_async(engine, a.config()) == (a.rev,)
    await engine.dispose()
    assert "account" not in a.tables()  # stamped, not migrated


@pytest.mark.asyncio
async def test_async_connection_in_callers_transaction_rollback_and_commit(
    a: Async,
) -> None:
    engine = a.async_engine()
    async with engine.connect() as conn:
        await conn.begin()
        await alembic_recipes.upgrade_async(conn, a.config())
        await conn.rollback()
    assert a.versions() == [] and "account" not in a.tables()
    async with engine.begin() as conn:  # commits on exit
        await alembic_recipes.upgrade_async(conn, a.config())
        assert a.versions() == []  # not committed yet: still the caller's
    assert a.versions() == [a.rev] and "account" in a.tables()
    await engine.dispose()


def test_sync_connection_in_callers_transaction_rollback_and_commit(a: Async) -> None:
    engine = a.sync_engine()
    with engine.connect() as conn:
        conn.begin()
        command.upgrade(a.config(connection=conn), "head")
        conn.rollback()
    assert a.versions() == [] and "account" not in a.tables()
    with engine.begin() as conn:
        command.upgrade(a.config(connection=conn), "head")
    assert a.versions() == [a.rev]


@pytest.mark.parametrize(
    "kind", ["Connection", "Engine", "AsyncEngine", "AsyncConnection"]
)
def test_every_accepted_connection_type(a: Async, kind: str) -> None:
    if kind == "Connection":
        with a.sync_engine().connect() as conn:
            command.upgrade(a.config(connection=conn), "head")
    elif kind == "Engine":
        command.upgrade(a.config(connection=a.sync_engine()), "head")
    elif kind == "AsyncEngine":
        engine = a.async_engine()
        command.upgrade(a.config(connection=engine), "head")
    else:

        async def main() -> None:
            engine = a.async_engine()
            async with engine.connect() as conn:
                # as pytest-alembic and cookbook users do: run_sync + attributes
                await conn.run_sync(
                    lambda _: command.upgrade(a.config(connection=conn), "head")
                )
                await conn.commit()
            await engine.dispose()

        asyncio.run(main())
    assert a.versions() == [a.rev]


def test_wrong_connection_type_is_a_clear_error(a: Async) -> None:
    with pytest.raises(TypeError) as info:
        command.upgrade(a.config(connection="sqlite:///x.db"), "head")
    assert str(info.value) == (
        "config.attributes['connection'] must be a sqlalchemy Connection, Engine, "
        "AsyncConnection or AsyncEngine, or an object whose connect() yields one of"
        " those, got str: 'sqlite:///x.db'"
    )
    assert a.versions() == []


@pytest.mark.asyncio
async def test_callers_async_engine_from_sync_call_in_loop_is_explained(
    a: Async,
) -> None:
    engine = a.async_engine()
    with pytest.raises(CommandError, match=r"await alembic_recipes\.upgrade"):
        command.upgrade(a.config(connection=engine), "head")
    await engine.dispose()
    assert a.versions() == []


def test_forced_ini_logging_keeps_app_loggers_enabled(a: Async) -> None:
    app_log = logging.getLogger("myapp.service")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    try:
        command.upgrade(a.config(configure_logger=True), "head")  # as the CLI does
        assert not app_log.disabled
        app_log.info("still here")
    finally:
        app_log.removeHandler(handler)
    assert seen == ["still here"]
    assert a.versions() == [a.rev]


def test_in_process_run_leaves_configured_logging_alone(a: Async) -> None:
    root = logging.getLogger()
    assert root.handlers  # pytest's capture handlers: logging is configured
    handlers = list(root.handlers)
    cfg = a.config()
    cfg.attributes.pop("configure_logger")  # the default
    command.upgrade(cfg, "head")
    assert root.handlers == handlers


def test_configure_logger_false_skips_ini_logging(a: Async) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    command.upgrade(a.config(), "head")
    assert root.handlers == handlers
