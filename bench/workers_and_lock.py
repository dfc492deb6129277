"""Benchmark: parallel fleet workers, and what the migration lock costs.

1. Fleet upgrades of N PostgreSQL tenant schemas (the 5-revision chain of
   ``bench/multitenant.py``) with ``-x workers=1, 2, 4``, with Alembic per
   tenant (``compiled=false``) and replaying a rendered script (``true``), each
   on fresh schemas of a fresh database per size; wall clock of one ``alembic
   -x tenant=all upgrade head`` process; for each size in ``--tenants``
   (default 200 and 1000).
2. The lock: a no-op single-database ``upgrade head`` (async-shared template,
   PostgreSQL via psycopg, and a SQLite file) run in-process ``--repeat`` times
   with ``migration_lock`` on and off, alternating, in the same run; medians.

Prints a table and the ratios the issue's targets name.  Usage::

    python bench/workers_and_lock.py [--tenants 200 1000] [--repeat 200] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multitenant import BIN, add_pg_url, alembic, make_project, throwaway_database

WORKERS = (1, 2, 4)
MODES = ("alembic", "replayed")
"""-x compiled=false (Alembic per tenant) and -x compiled=true (a once-rendered
script replayed per tenant, what the default compiled_upgrades = auto does for
paths whose SQL is the same for every tenant)."""


def fleet_runs(server: sa.URL, sizes: list[int]) -> dict[tuple[int, str, int], float]:
    """ms per tenant for each (tenants, mode, workers), on fresh schemas."""
    results: dict[tuple[int, str, int], float] = {}
    for n in sizes:
        with throwaway_database(server) as url:  # a fresh database per size
            fleet_size(url, n, results)
    return results


def fleet_size(url: sa.URL, n: int, results: dict[tuple[int, str, int], float]) -> None:
    """Every mode and worker count for *n* tenants, on fresh schemas of *url*."""
    engine = sa.create_engine(url)
    workdir = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    try:
        make_project(workdir, url.render_as_string(hide_password=False))
        for mode in MODES:
            for workers in WORKERS:
                seconds = contender(engine, workdir, n, mode, workers)
                results[(n, mode, workers)] = seconds * 1000 / n
                print(f"  {n:>5} tenants  {mode:<8}  workers={workers}:"
                      f" {results[(n, mode, workers)]:7.2f} ms/tenant",
                      flush=True)  # fmt: skip
    finally:
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def contender(
    engine: sa.Engine, workdir: Path, n: int, mode: str, workers: int
) -> float:
    """Seconds of one fleet upgrade of *n* new schemas (wall clock of the CLI)."""
    prefix = f"{mode[0]}{workers}"
    with engine.begin() as conn:
        for i in range(n):
            conn.exec_driver_sql(f"CREATE SCHEMA {prefix}_{i:05d}")
    # -x tenant=... on the command line would be long: the ini's pattern
    # selects this contender's schemas
    ini = workdir / "alembic.ini"
    text = ini.read_text()
    pattern = next(
        line for line in text.splitlines() if line.startswith("tenants_pattern = ")
    )
    ini.write_text(text.replace(pattern, f"tenants_pattern = {prefix}_*"))
    started = time.perf_counter()
    alembic(
        workdir, "-x", "tenant=all",
        "-x", f"compiled={'true' if mode == 'replayed' else 'false'}",
        "-x", f"workers={workers}", "upgrade", "head",
    )  # fmt: skip
    return time.perf_counter() - started


def lock_cost(url: str, repeat: int) -> tuple[float, float]:
    """Median ms of a no-op ``upgrade head`` with and without the lock."""
    workdir = Path(tempfile.mkdtemp(prefix="ar-bench-lock-"))
    try:
        alembic(workdir, "init", "-t", "async-shared", "migrations")
        cfg_path = workdir / "alembic.ini"
        text = cfg_path.read_text()
        old = next(
            line for line in text.splitlines() if line.startswith("sqlalchemy.url")
        )
        cfg_path.write_text(text.replace(old, f"sqlalchemy.url = {url}"))
        alembic(workdir, "revision", "-m", "one")
        alembic(workdir, "upgrade", "head")
        os.chdir(workdir)
        timings: dict[bool, list[float]] = {True: [], False: []}
        for i in range(repeat * 2):
            locked = i % 2 == 0
            cfg = Config(str(cfg_path))
            cfg.attributes.update(configure_logger=False, migration_lock=locked)
            started = time.perf_counter()
            command.upgrade(cfg, "head")
            timings[locked].append((time.perf_counter() - started) * 1000)
        return statistics.median(timings[True]), statistics.median(timings[False])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=200)
    add_pg_url(parser)
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    print(f"alembic at {BIN}\n\nFleet upgrades, one CLI process (wall clock):")
    fleet = fleet_runs(server, args.tenants)

    print("\nThe migration lock, no-op `upgrade head`, in-process, medians:")
    sqlite_dir = Path(tempfile.mkdtemp(prefix="ar-bench-sqlite-"))
    with throwaway_database(server) as database:
        pg = database.render_as_string(hide_password=False)
        for label, url in (
            ("PostgreSQL (psycopg)", pg),
            ("SQLite file", f"sqlite:///{sqlite_dir}/app.db"),
        ):
            on, off = lock_cost(url, args.repeat)
            print(f"  {label:<22} lock on {on:6.2f} ms, off {off:6.2f} ms:"
                  f" +{on - off:5.2f} ms (target <= 5 ms)")  # fmt: skip
    shutil.rmtree(sqlite_dir, ignore_errors=True)

    print("\nTargets:")
    for n in args.tenants:
        for mode in MODES:
            one = fleet[(n, mode, 1)]
            for workers in (2, 4):
                ratio = one / fleet[(n, mode, workers)]
                target = " (target >= 1.25x)" if workers == 2 else ""
                print(f"  {n:>5} tenants {mode:<8} workers={workers} vs 1:"
                      f" {ratio:5.2f}x faster{target}")  # fmt: skip


if __name__ == "__main__":
    main()
