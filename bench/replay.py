"""Benchmark: the fleet's replay path against the raw-SQL floor, side by side.

Two chains, each on PostgreSQL (schema strategy, psycopg):

* synthetic: ``--tenants`` (400) schemas, 5 revisions each creating a table
  and an index;
* a real history: the revisions of ``--history`` (default: ckan 2.12.0's, as
  its wheel ships them -- ``pip install --no-deps ckan==2.12.0``) up to the
  first one that cannot be rendered offline (the part of the chain that
  renders), ``--history-tenants`` (20) tenants created by the run.

Contenders, alternating over ``--rounds`` rounds, each on a fresh database:

* default: ``command.upgrade(config, "head")`` in-process over the tenants
  (``tenant=[...]``), everything on: run record, lock, timeouts;
* floor: the simplest loop over the same rendered script -- one connection,
  per tenant ``SET LOCAL search_path`` and the tenant's script as one
  ``execute``, then ``COMMIT`` (what no tool can beat);
* cookbook (the real history): the Alembic cookbook's schema-per-tenant
  env.py -- one process, each tenant's ``search_path`` set and Alembic run
  per tenant in its transaction.

Prints ms per tenant, the ratios, and per tenant of the default run: its
round trips (statements and commits sent) and its client (Python) time.

    python bench/replay.py [--tenants 400] [--history-tenants 20] [--rounds 3]
        [--history DIR] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from multitenant import (
    add_pg_url,
    create_schemas,
    make_project,
    ms_per,
    set_url,
    throwaway_database,
    verdict,
)
from sqlalchemy import event

SYNTHETIC = [
    (
        f"t{i}",
        f'op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),'
        f' sa.Column("v", sa.String(20)))\n'
        f'op.create_index("ix_t{i}_v", "t{i}", ["v"])',
    )
    for i in range(5)
]

COOKBOOK_ENV = '''\
"""The Alembic cookbook's schema-per-tenant env.py, looping over the tenants."""
from alembic import context
from sqlalchemy import engine_from_config, pool, text

config = context.config


def run_migrations_online():
    engine = engine_from_config(
        config.get_section(config.config_ini_section), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        for tenant in config.attributes["tenants"]:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{tenant}"'))
            connection.execute(text(f'SET search_path TO "{tenant}"'))
            connection.commit()
            connection.dialect.default_schema_name = tenant
            context.configure(connection=connection, version_table_schema=tenant)
            with context.begin_transaction():
                context.run_migrations()


run_migrations_online()
'''


class Counter:
    """Statements and commits sent on the engines made meanwhile."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        def executed(*args: object) -> None:
            self.statements += 1

        def committed(*args: object) -> None:
            self.commits += 1

        event.listen(sa.engine.Engine, "before_cursor_execute", executed)
        event.listen(sa.engine.Engine, "commit", committed)
        try:
            yield
        finally:
            event.remove(sa.engine.Engine, "before_cursor_execute", executed)
            event.remove(sa.engine.Engine, "commit", committed)


def default(root: Path, url: sa.URL, names: list[str], counter: Counter) -> float:
    set_url(root, url)
    config = Config(str(root / "alembic.ini"))
    config.attributes.update(
        configure_logger=False, tenant=names, progress="quiet", create="true"
    )
    started = time.perf_counter()
    with counter.counting(), contextlib.redirect_stderr(io.StringIO()):
        command.upgrade(config, "head")
    return time.perf_counter() - started


def rendered(root: Path, url: sa.URL) -> str:
    """One tenant's script from base, as the fleet renders it (offline)."""
    set_url(root, url)
    config = Config(str(root / "alembic.ini"), output_buffer=io.StringIO())
    config.attributes.update(configure_logger=False, tenant="floor_template")
    buffer = io.StringIO()
    config.output_buffer = buffer
    with contextlib.redirect_stderr(io.StringIO()):
        command.upgrade(config, "head", sql=True)
    text = buffer.getvalue()
    lines = [
        line
        for line in text.splitlines()
        if line.strip() not in ("BEGIN;", "COMMIT;")
        and not line.startswith(("SET search_path", "CREATE SCHEMA"))
    ]
    return "\n".join(lines)


def floor(script: str, url: sa.URL, names: list[str]) -> float:
    """One connection: per tenant SET LOCAL search_path + its script, COMMIT."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for name in names:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        raw.commit()
        started = time.perf_counter()
        for name in names:
            cursor.execute(
                f'SET LOCAL search_path TO "{name}";\n'
                + script.replace("floor_template", name)
            )
            raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()


def cookbook(root: Path, url: sa.URL, names: list[str]) -> float:
    set_url(root, url)
    env_py = root / "migrations" / "env.py"
    original = env_py.read_text()
    env_py.write_text(COOKBOOK_ENV)
    try:
        config = Config(str(root / "alembic.ini"))
        config.attributes.update(tenants=names)
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            command.upgrade(config, "head")
        return time.perf_counter() - started
    finally:
        env_py.write_text(original)


def compare(
    label: str,
    server: sa.URL,
    root: Path,
    names: list[str],
    rounds: int,
    *,
    precreate: bool,
    with_cookbook: bool,
    target: float,
) -> None:
    ms: dict[str, list[float]] = {"default": [], "floor": [], "cookbook": []}
    trips: list[float] = []
    cpu: list[float] = []
    with throwaway_database(server) as url:
        script = rendered(root, url)
    for _ in range(rounds):
        with throwaway_database(server) as url:
            if precreate:
                create_schemas(url, names)
            counter = Counter()
            cpu_before = time.process_time()
            seconds = default(root, url, names, counter)
            cpu.append(ms_per(time.process_time() - cpu_before, len(names)))
            ms["default"].append(ms_per(seconds, len(names)))
            trips.append((counter.statements + counter.commits) / len(names))
        with throwaway_database(server) as url:
            ms["floor"].append(ms_per(floor(script, url, names), len(names)))
        if with_cookbook:
            with throwaway_database(server) as url:
                ms["cookbook"].append(ms_per(cookbook(root, url, names), len(names)))
    med = {k: statistics.median(v) for k, v in ms.items() if v}
    ratios = sorted(d / f for d, f in zip(ms["default"], ms["floor"], strict=True))
    print(f"{label}: {len(names)} tenants, {rounds} alternating rounds", flush=True)
    print(
        f"  default {med['default']:.2f} ms/tenant, floor {med['floor']:.2f}"
        + (f", cookbook loop {med['cookbook']:.2f}" if "cookbook" in med else ""),
        flush=True,
    )
    ratio = statistics.median(ratios)
    print(
        f"  default / floor: median {ratio:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}x);"
        f" <= {target}x: {verdict(ratio <= target)}",
        flush=True,
    )
    if "cookbook" in med:
        faster = med["default"] < med["cookbook"]
        print(
            f"  default faster than the cookbook loop: {verdict(faster)}"
            f" ({med['cookbook'] / med['default']:.1f}x)",
            flush=True,
        )
    print(
        f"  default, per tenant: {statistics.median(trips):.1f} round trips"
        f" (statements + commits; the floor: 2), {statistics.median(cpu):.2f} ms"
        " of client CPU",
        flush=True,
    )


def history_folder(given: str | None) -> Path:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("ckan")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install --no-deps ckan==2.12.0, or pass --history DIR")
    return Path(spec.origin).parent / "migration" / "versions"


def renderable_prefix(root: Path, folder: Path) -> None:
    """Copy *folder*'s revisions into the project, up to the first one the
    fleet cannot render (found by rendering, as the fleet would)."""
    versions = root / "migrations" / "versions"
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        shutil.copy(path, versions / path.name)
        config = Config(str(root / "alembic.ini"))
        config.attributes.update(configure_logger=False, tenant="probe")
        buffer = io.StringIO()
        config.output_buffer = buffer
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                command.upgrade(config, "head", sql=True)
        except Exception:
            (versions / path.name).unlink()
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=400)
    parser.add_argument("--history-tenants", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history")
    parser.add_argument("--only", choices=("synthetic", "history"))
    add_pg_url(parser)
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    workdir = Path(tempfile.mkdtemp(prefix="ar-bench-replay-"))
    try:
        if args.only != "history":
            root = workdir / "synthetic"
            root.mkdir()
            make_project(root, server.set(database="x").render_as_string(), SYNTHETIC)
            os.chdir(root)
            names = [f"t_{i:05d}" for i in range(args.tenants)]
            compare("synthetic chain", server, root, names, args.rounds,
                    precreate=True, with_cookbook=False, target=1.2)  # fmt: skip
        if args.only != "synthetic":
            root = workdir / "history"
            root.mkdir()
            make_project(root, server.set(database="x").render_as_string(), [])
            with throwaway_database(server) as url:
                set_url(root, url)
                renderable_prefix(root, history_folder(args.history))
            os.chdir(root)
            count = len(list((root / "migrations" / "versions").glob("*.py")))
            names = [f"t_{i:05d}" for i in range(args.history_tenants)]
            compare(f"real history ({count} revisions that render)", server, root,
                    names, args.rounds, precreate=False, with_cookbook=True,
                    target=1.3)  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
