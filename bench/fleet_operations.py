"""Benchmark: what operating a fleet costs (run record, report, progress; plan,
current and check over thousands of tenant schemas).

On PostgreSQL (schema strategy, the 5-revision chain of ``multitenant.py``):

* **bookkeeping**: a default fleet upgrade of ``--tenants`` (1,000) fresh
  schemas in-process, with everything an operator gets -- the run record
  written as the run goes (its intent when it starts, each tenant's row in
  the tenant's own transaction), ``-x report=PATH`` flushed per tenant and
  the live progress bar (drawn into ``/dev/null``) -- against the same run
  with the record written the way it was before (one write of every row
  when the run ends), alternating over ``--rounds`` rounds, each on a fresh
  database.  Target: at most 3% slower.  The time spent in the record, the
  report and the bar is also measured inside each run, in percent of it.
* **status**: with ``--status-tenants`` (5,000) schemas at head, one
  ``alembic -x tenant=all current`` and one ``alembic -x tenant=all -x
  plan=true upgrade head`` process each (wall clock, start-up included).
  Target: at most 2 seconds each.
* **check**: ``alembic -x tenant=all check`` over ``--check-tenants`` (20)
  schemas in one process, against one ``alembic -x tenant=X check``
  process per tenant (the models differ from the schemas a little: every
  tenant has a difference to render).

Usage::

    python bench/fleet_operations.py [--tenants 1000 --rounds 5]
        [--status-tenants 5000] [--check-tenants 20] [--pg-url URL]
        [--only check status bookkeeping]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic_recipes.tenants.records.journal import Journal
from alembic_recipes.tenants.records.outcomes import status_of
from alembic_recipes.tenants.records.progress import Progress
from alembic_recipes.tenants.records.record import UNFINISHED, write_rows
from alembic_recipes.tenants.records.report_file import ReportFile
from multitenant import (
    BIN,
    add_pg_url,
    create_schemas,
    in_process,
    make_project,
    set_url,
    throwaway_database,
    verdict,
)


@contextlib.contextmanager
def timing(spent: list[float]) -> Iterator[None]:
    """Meanwhile the time spent writing the run record and the report and
    drawing the progress bar is added up in *spent* (one number)."""
    targets = [
        (Journal, "begin"),
        (Journal, "done"),
        (Journal, "done_sql"),
        (Journal, "reported"),
        (Journal, "finish"),
        (ReportFile, "add"),
        (ReportFile, "close"),
        (Progress, "start"),
        (Progress, "advance"),
        (Progress, "close"),
    ]
    originals = [(cls, name, getattr(cls, name)) for cls, name in targets]

    def timed_method(method: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return wrapper

    for cls, name, method in originals:
        setattr(cls, name, timed_method(method))
    try:
        yield
    finally:
        for cls, name, method in originals:
            setattr(cls, name, method)


@contextlib.contextmanager
def record_at_the_end() -> Iterator[None]:
    """Meanwhile the run record is written as it was before it was written
    as the run goes: nothing until the run ends, then every tenant's row in
    one transaction (a stand-in, for the measurement only)."""
    names = ("begin", "done", "done_sql", "reported", "finish")
    originals = {name: getattr(Journal, name) for name in names}
    kept: dict[int, dict[str, dict[str, object]]] = {}

    def begin(self: Journal, tenants: Any, at_head: Any) -> None:
        kept[id(self)] = {n: self.entry(n, "not attempted") for n in tenants}

    def done(self: Journal, name: str, result: Any, on: Any = None) -> None:
        status, before, after = status_of(self.command, result, self.heads)
        kept[id(self)][name] = self.entry(name, status, before, after)

    def done_sql(self: Journal, name: str, result: Any, *args: Any) -> None:
        done(self, name, result)

    def reported(self: Journal, name: str, entry: dict[str, Any]) -> None:
        if entry["status"] in UNFINISHED:
            kept[id(self)][name] = {**self.entry(name, entry["status"]), **entry}

    def finish(self: Journal) -> None:
        rows = list(kept.pop(id(self), {}).values())
        if self.active and rows:
            self._write_on(None, lambda conn, schema: write_rows(conn, schema, rows))

    for name, fn in (("begin", begin), ("done", done), ("done_sql", done_sql),
                     ("reported", reported), ("finish", finish)):  # fmt: skip
        setattr(Journal, name, fn)
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(Journal, name, fn)


def bookkeeping(server: sa.URL, root: Path, n: int, rounds: int) -> None:
    names = [f"t_{i:05d}" for i in range(n)]
    going: list[float] = []
    at_end: list[float] = []
    shares: list[float] = []
    report = root / "run.jsonl"
    for _ in range(rounds):
        for results, as_it_goes in ((going, True), (at_end, False)):
            with throwaway_database(server) as url:
                set_url(root, url)
                create_schemas(url, names)
                with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                    if as_it_goes:
                        spent = [0.0]
                        with timing(spent):
                            seconds = in_process(
                                root, names, progress="bar", report=str(report)
                            )
                        shares.append(100 * spent[0] / seconds)
                    else:
                        with record_at_the_end():
                            seconds = in_process(
                                root, names, progress="bar", report=str(report)
                            )
            results.append(seconds)
    costs = sorted(
        100 * (a - b) / b for a, b in zip(going, at_end, strict=True)
    )  # percent of the end-of-run run, round by round
    median = statistics.median(costs)
    print(
        f"Run record written as the run goes vs at its end, {rounds} alternating"
        f" rounds of {n} tenants: {statistics.median(going):.2f} s vs"
        f" {statistics.median(at_end):.2f} s; cost median {median:+.1f}% (from"
        f" {costs[0]:+.1f}% to {costs[-1]:+.1f}%); <= 3%: {verdict(median <= 3)}",
        flush=True,
    )
    print(
        f"  record + report + progress bar, measured inside each run: median"
        f" {statistics.median(shares):.2f}% of the run (from {min(shares):.2f}% to"
        f" {max(shares):.2f}%)",
        flush=True,
    )


def timed(root: Path, *args: str, differs: bool = False) -> float:
    """Seconds of one ``alembic`` process (*differs*: ``check`` exits 255
    because the tenants differ from the models, as is meant here)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "alembic"), *args], cwd=root, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    found = "differ from the target" in done.stdout or "operations detected" in (
        done.stdout
    )
    if done.returncode and not (differs and found):
        raise SystemExit(f"alembic {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def status(server: sa.URL, root: Path, n: int) -> None:
    names = [f"t_{i:05d}" for i in range(n)]
    with throwaway_database(server) as url:
        set_url(root, url)
        create_schemas(url, names)
        in_process(root, names, compiled=True)
        for label, args in (
            ("current", ("-x", "tenant=all", "current")),
            ("plan", ("-x", "tenant=all", "-x", "plan=true", "upgrade", "head")),
        ):
            seconds = min(timed(root, *args) for _ in range(3))
            print(
                f"{label} over {n} tenants at head: {seconds:.2f} s (best of 3,"
                f" one process); <= 2 s: {verdict(seconds <= 2)}",
                flush=True,
            )


def check(server: sa.URL, root: Path, n: int) -> None:
    names = [f"t_{i:05d}" for i in range(n)]
    with throwaway_database(server) as url:
        set_url(root, url)
        create_schemas(url, names)
        in_process(root, names)
        fleet = timed(root, "-x", "tenant=all", "check", differs=True)
        started = time.perf_counter()
        for name in names:
            timed(root, "-x", f"tenant={name}", "check", differs=True)
        each = time.perf_counter() - started
    print(
        f"check over {n} tenants: {fleet:.2f} s in one process,"
        f" {each:.2f} s as one process per tenant ({each / fleet:.1f}x)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--status-tenants", type=int, default=5000)
    parser.add_argument("--check-tenants", type=int, default=20)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("check", "status", "bookkeeping"),
        default=("check", "status", "bookkeeping"),
    )
    add_pg_url(parser)
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    root = Path(tempfile.mkdtemp(prefix="ar-bench-ops-"))
    try:
        placeholder = server.set(database="placeholder")
        make_project(root, placeholder.render_as_string(hide_password=False))
        (root / "models.py").write_text(MODELS)
        env_py = root / "migrations" / "env.py"
        env_py.write_text(
            env_py.read_text().replace(
                "target_metadata = None",
                "from models import metadata as target_metadata",
            )
        )
        os.chdir(root)
        if "check" in args.only:
            check(server, root, args.check_tenants)
        if "status" in args.only:
            status(server, root, args.status_tenants)
        if "bookkeeping" in args.only:
            bookkeeping(server, root, args.tenants, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


MODELS = """\
import sqlalchemy as sa

metadata = sa.MetaData()
customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
    sa.Column("email", sa.String(200)),
)
"""

if __name__ == "__main__":
    main()
