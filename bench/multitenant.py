"""Benchmark: migrating a fleet of PostgreSQL tenant schemas (multitenant template).

A project (``alembic init -t multitenant``, schema strategy) with a chain of
revisions (tables, indexes, column adds; 5 by default, and 50 for the
revision-count comparison), and for each fleet size (default 100, 1,000 and
10,000 tenant schemas; ``--quick``: 20 and 100, for a CI-sized run) these
contenders, each on a fresh database of its own so one contender's tables
never slow the next:

* default: one ``alembic -x tenant=all upgrade head`` process (wall clock; its
  peak RSS through ``wait4``), and the same command in-process;
* compiled: ``-x compiled=true`` in-process;
* floor: the ``--sql`` script of one tenant executed per schema on one
  connection, one transaction each (what no tool can beat);
* no-op: the default command again once every tenant is at head, in-process;
* workers=4: ``-x workers=4`` (wall clock of the CLI), against a parallel
  floor: the floor's script over 4 processes, a quarter of the tenants each.

The default in-process run and the floor also count their transactions
(``pg_stat_database``: commits and rollbacks per tenant), and at 1,000
tenants (``--ratio-rounds``) they alternate over several rounds for the
default / floor ratio with its spread.

Then the default in-process with and without the lock and statement
timeouts (``lock_timeout`` and ``statement_timeout`` at 0: nothing set per
transaction), alternating over several rounds, for what the timeouts cost.
Plus one ``alembic -x tenant=X upgrade head`` process per tenant (a sample,
extrapolated), for the process-per-tenant ratio.  And a 10-revision chain
with one revision that reads the database (it cannot be rendered offline, so
the path is split around it: the rest replayed, it run by Alembic) against
the same chain without it, alternating over rounds: the ratio and its
spread.  Prints ms per tenant, the ratios the targets name, and whether each
is met.  Usage::

    python bench/multitenant.py [--quick] [--tenants 100 1000 10000] [--sample 20]
        [--ratio-rounds 3]
        [--many-revisions 50 --many-tenants 200]
        [--timeouts-tenants 300 --timeouts-rounds 5]
        [--segments-tenants 200 --segments-rounds 5] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

BIN = Path(sys.executable).parent
REVISIONS = [
    (
        "customer",
        'op.create_table("customer", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("name", sa.String(100), nullable=False),'
        ' sa.Column("created_at", sa.DateTime, server_default=sa.func.now()))\n'
        'op.create_index("ix_customer_name", "customer", ["name"])',
    ),
    (
        "invoice",
        'op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id")),'
        ' sa.Column("amount", sa.Numeric(12, 2)))\n'
        'op.create_index("ix_invoice_customer", "invoice", ["customer_id"])',
    ),
    (
        "email",
        'op.add_column("customer", sa.Column("email", sa.String(200)))\n'
        'op.create_index("ux_customer_email", "customer", ["email"], unique=True)',
    ),
    (
        "line_item",
        'op.create_table("line_item", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),'
        ' sa.Column("sku", sa.String(40)), sa.Column("qty", sa.Integer))\n'
        'op.create_index("ix_line_item_invoice", "line_item", ["invoice_id"])',
    ),
    (
        "status",
        'op.add_column("invoice", sa.Column("status", sa.String(20),'
        ' server_default="open"))\n'
        'op.create_index("ix_invoice_status", "invoice", ["status"])',
    ),
]


def many_revisions(count: int) -> list[tuple[str, str]]:
    """*count* revisions: the 5 above, then tables with an index each."""
    extra = [
        (
            f"t{i}",
            f'op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),'
            f' sa.Column("v", sa.String(20)))\n'
            f'op.create_index("ix_t{i}_v", "t{i}", ["v"])',
        )
        for i in range(count - len(REVISIONS))
    ]
    return [*REVISIONS, *extra][:count]


def alembic(root: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "alembic"), *args], cwd=root, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"alembic {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def make_project(
    root: Path, url: str, revisions: list[tuple[str, str]] = REVISIONS
) -> None:
    alembic(root, "init", "-t", "multitenant", "migrations")
    ini = root / "alembic.ini"
    text = ini.read_text()
    text = text.replace("tenant_strategy = database", "tenant_strategy = schema")
    text = text.replace(
        "sqlalchemy.url = sqlite:///%(here)s/tenants/{tenant}.db",
        f"sqlalchemy.url = {url}",
    )
    # -x tenant=all selects the CLI contender's schemas
    text = text.replace("tenants = acme, globex", "tenants_pattern = t_*")
    ini.write_text(text)
    config = Config(str(ini))  # revisions written in-process: setup, not measured
    for message, body in revisions:
        # in the project directory, as a user runs it ("prepend_sys_path = ."
        # is the project's); quiet: no "Generating ..."
        with contextlib.chdir(root), contextlib.redirect_stdout(io.StringIO()):
            script = command.revision(config, message=message)
        assert script is not None and not isinstance(script, list)
        path = Path(script.path)
        source = path.read_text()  # imports op and sa, as stock Alembic's do
        indented = "\n".join(f"    {line}" for line in body.splitlines())
        source = source.replace(
            '"""Upgrade schema."""\n', f'"""Upgrade schema."""\n{indented}\n'
        )
        path.write_text(source)


def add_pg_url(parser: argparse.ArgumentParser) -> None:
    """``--pg-url``: the PostgreSQL server (default: the tests' server)."""
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "ALEMBIC_RECIPES_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )


@contextmanager
def throwaway_database(server: sa.URL) -> Iterator[sa.URL]:
    """A fresh database on *server* for one contender group, dropped afterwards."""
    name = f"ar_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def ms_per(seconds: float, count: int) -> float:
    return seconds * 1000 / count


def set_url(root: Path, url: sa.URL) -> None:
    ini = root / "alembic.ini"
    text = ini.read_text()
    old = next(
        line for line in text.splitlines() if line.startswith("sqlalchemy.url = ")
    )
    rendered = url.render_as_string(hide_password=False)
    ini.write_text(text.replace(old, f"sqlalchemy.url = {rendered}"))


def create_schemas(url: sa.URL, names: list[str]) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    engine.dispose()


def cli(root: Path, *args: str) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one ``alembic`` process."""
    with tempfile.TemporaryFile("w+") as log:  # a pipe would fill up and block
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(BIN / "alembic"), *args], cwd=root,
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if status:
            log.seek(0)
            raise SystemExit(f"alembic {' '.join(args)} failed:\n{log.read()}")
    return seconds, usage.ru_maxrss


def in_process(root: Path, names: list[str], **attributes: object) -> float:
    cfg = Config(str(root / "alembic.ini"))
    cfg.attributes.update(configure_logger=False, tenant=names, **attributes)
    started = time.perf_counter()
    command.upgrade(cfg, "head")
    return time.perf_counter() - started


def floor(root: Path, url: sa.URL, names: list[str]) -> float:
    """The --sql script of one tenant, executed per schema: the floor."""
    script = alembic(root, "-x", "tenant=floor_template", "upgrade", "head", "--sql")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for name in names:
            cursor.execute(script.replace("floor_template", name))
            raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()


@dataclass
class Size:
    """The contenders' ms per tenant at one fleet size."""

    tenants: int
    ms: dict[str, float] = field(default_factory=dict)
    rss_kib: int = 0
    transactions: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Commits and rollbacks per tenant, by contender."""
    catalog: tuple[int, float] = (0, 0.0)
    """Rows and MiB of ``pg_class`` (indexes included) once every tenant is
    migrated."""


def catalog_size(url: sa.URL) -> tuple[int, float]:
    """``pg_class``: its rows, and its size with indexes in MiB."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.scalar(sa.text("SELECT count(*) FROM pg_class"))
        size = conn.scalar(sa.text("SELECT pg_total_relation_size('pg_class')"))
    engine.dispose()
    return int(rows or 0), int(size or 0) / 2**20


def transactions(url: sa.URL) -> tuple[int, int]:
    """Commits and rollbacks in *url*'s database so far (the statistics of
    sessions that have ended: a backend reports its counts as it exits, before
    it leaves ``pg_stat_activity``, so wait until the database has none)."""
    admin = sa.create_engine(
        url.set(database="postgres"),
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",  # each read a fresh statistics snapshot
    )
    with admin.connect() as conn:
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                {"name": url.database},
            ).scalar_one()
        ):
            time.sleep(0.01)
        row = conn.execute(
            sa.text(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database"
                " WHERE datname = :name"
            ),
            {"name": url.database},
        ).one()
    admin.dispose()
    return int(row[0]), int(row[1])


def parallel_floor(root: Path, url: sa.URL, names: list[str], workers: int) -> float:
    """The floor's script over *workers* processes, a share of the tenants
    each: seconds from their start to the last one's end."""
    script = alembic(root, "-x", "tenant=floor_template", "upgrade", "head", "--sql")
    rendered = url.render_as_string(hide_password=False)
    code = (
        "import sys, psycopg\n"
        "script, url, names = sys.stdin.read(), sys.argv[1], sys.argv[2:]\n"
        "with psycopg.connect(url.replace('postgresql+psycopg', 'postgresql')) as c:\n"
        "    for name in names:\n"
        "        c.execute(script.replace('floor_template', name))\n"
        "        c.commit()\n"
    )
    shares = [names[k::workers] for k in range(workers)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, rendered, *share],
            stdin=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(script)
        process.stdin.close()
    for process in processes:
        if process.wait():
            raise SystemExit("the parallel floor failed")
    return time.perf_counter() - started


def measure(server: sa.URL, root: Path, n: int, workers: bool = True) -> Size:
    size = Size(n)
    names = [f"t_{i:05d}" for i in range(n)]
    contenders = ["default cli", "default", "compiled", "floor"]
    if workers:
        contenders += ["workers=4", "parallel floor"]
    for contender in contenders:
        with throwaway_database(server) as url:
            set_url(root, url)
            create_schemas(url, names)
            counted = transactions(url)
            if contender == "default cli":
                seconds, size.rss_kib = cli(root, "-x", "tenant=all", "upgrade", "head")
            elif contender == "default":
                seconds = in_process(root, names)
            elif contender == "compiled":
                seconds = in_process(root, names, compiled=True)
            elif contender == "floor":
                seconds = floor(root, url, names)
            elif contender == "workers=4":
                seconds, _ = cli(
                    root, "-x", "tenant=all", "-x", "workers=4", "upgrade", "head"
                )
            else:
                seconds = parallel_floor(root, url, names, 4)
            if contender in ("default", "floor"):
                after = transactions(url)
                size.transactions[contender] = (
                    (after[0] - counted[0]) / n,
                    (after[1] - counted[1]) / n,
                )
            if contender == "default":
                size.ms["no-op"] = ms_per(in_process(root, names), n)
                size.catalog = catalog_size(url)
            size.ms[contender] = ms_per(seconds, n)
        print(f"  {n:>5} tenants  {contender:<14} {size.ms[contender]:8.2f} ms/tenant",
              flush=True)  # fmt: skip
    print(f"  {n:>5} tenants  no-op          {size.ms['no-op']:8.2f} ms/tenant;"
          f" CLI peak RSS {size.rss_kib / 1024:.0f} MiB", flush=True)  # fmt: skip
    rows, mib = size.catalog
    print(f"  {n:>5} tenants  pg_class: {rows} rows, {mib:.1f} MiB; a fleet-wide"
          f" version read (the no-op run): {size.ms['no-op'] * n / 1000:.2f} s",
          flush=True)  # fmt: skip
    for contender, (commits, rollbacks) in size.transactions.items():
        print(f"  {n:>5} tenants  {contender:<14} {commits:.2f} commits and"
              f" {rollbacks:.2f} rollbacks per tenant", flush=True)  # fmt: skip
    return size


def floor_ratio(server: sa.URL, root: Path, n: int, rounds: int) -> list[float]:
    """default in-process / floor at *n* tenants, alternating over *rounds*,
    each on a fresh database: the ratios, sorted."""
    names = [f"t_{i:05d}" for i in range(n)]
    ratios = []
    for _ in range(rounds):
        seconds = {}
        for contender in ("default", "floor"):
            with throwaway_database(server) as url:
                set_url(root, url)
                create_schemas(url, names)
                seconds[contender] = (
                    in_process(root, names)
                    if contender == "default"
                    else floor(root, url, names)
                )
        ratios.append(seconds["default"] / seconds["floor"])
    return sorted(ratios)


def per_process(server: sa.URL, root: Path, sample: int) -> float:
    """ms per tenant of one ``alembic -x tenant=X upgrade head`` each."""
    with throwaway_database(server) as url:
        set_url(root, url)
        names = [f"p_{i:04d}" for i in range(sample)]
        create_schemas(url, names)
        started = time.perf_counter()
        for name in names:
            alembic(root, "-x", f"tenant={name}", "upgrade", "head")
        return ms_per(time.perf_counter() - started, sample)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized: 20 and 100 tenants, 1 round"
    )
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--ratio-rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--many-revisions", type=int, default=50)
    parser.add_argument("--many-tenants", type=int, default=200)
    parser.add_argument("--timeouts-tenants", type=int, default=300)
    parser.add_argument("--timeouts-rounds", type=int, default=5)
    parser.add_argument("--segments-tenants", type=int, default=200)
    parser.add_argument("--segments-rounds", type=int, default=5)
    parser.add_argument(
        "--only-segments", action="store_true", help="run the segment comparison only"
    )
    add_pg_url(parser)
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.sample, args.ratio_rounds = [20, 100], 3, 2
        args.many_revisions, args.many_tenants = 10, 20
        args.timeouts_tenants, args.timeouts_rounds = 20, 1
        args.segments_tenants, args.segments_rounds = 20, 1
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    workdir = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    try:
        if args.only_segments:
            segments(server, workdir, args.segments_tenants, args.segments_rounds)
            return
        five, many = workdir / "five", workdir / "many"
        five.mkdir()
        many.mkdir()
        placeholder = server.set(database="placeholder")
        make_project(five, placeholder.render_as_string(hide_password=False))
        make_project(
            many,
            placeholder.render_as_string(hide_password=False),
            many_revisions(args.many_revisions),
        )
        os.chdir(five)
        print(f"Fleet upgrades, {len(REVISIONS)} revisions:")
        sizes = [measure(server, five, n) for n in args.tenants]
        os.chdir(many)
        print(f"\n{args.many_revisions} revisions:")
        lots = measure(server, many, args.many_tenants, workers=False)
        os.chdir(five)
        process_ms = per_process(server, five, args.sample)
        print(
            f"\n  one process per tenant (sample of {args.sample}): {process_ms:.1f} ms"
        )
        ratio_n = 1000 if 1000 in args.tenants else args.tenants[-1]
        ratios = floor_ratio(server, five, ratio_n, args.ratio_rounds)
        report(sizes, lots, process_ms, args.many_revisions, (ratio_n, ratios))
        timeouts_cost(server, five, args.timeouts_tenants, args.timeouts_rounds)
        segments(server, workdir, args.segments_tenants, args.segments_rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    sizes: list[Size],
    lots: Size,
    process_ms: float,
    revisions: int,
    ratios: tuple[int, list[float]],
) -> None:
    small, large = sizes[0], sizes[-1]
    by_n = {s.tenants: s for s in sizes}
    mid = by_n.get(1000, sizes[len(sizes) // 2])
    print("\nTargets:")
    growth = large.ms["default"] / mid.ms["default"]
    print(f"  default in-process, {large.tenants} vs {mid.tenants} tenants:"
          f" {growth:.2f}x (<= 1.2x: {verdict(growth <= 1.2)})")  # fmt: skip
    ratio = large.ms["default"] / large.ms["floor"]
    print(f"  default in-process / floor at {large.tenants}: {ratio:.2f}x"
          f" (<= 1.2x: {verdict(ratio <= 1.2)})")  # fmt: skip
    n, spread = ratios
    median = statistics.median(spread)
    print(f"  default in-process / floor at {n}, {len(spread)} alternating"
          f" rounds: median {median:.2f}x (from {spread[0]:.2f} to"
          f" {spread[-1]:.2f})")  # fmt: skip
    for size in sizes:
        commits, rollbacks = size.transactions["default"]
        floor_commits, floor_rollbacks = size.transactions["floor"]
        print(f"  transactions per tenant at {size.tenants}: default {commits:.2f}"
              f" commits + {rollbacks:.2f} rollbacks, floor {floor_commits:.2f} +"
              f" {floor_rollbacks:.2f}")  # fmt: skip
    noop = [size.ms["no-op"] for size in sizes]
    flat = large.ms["no-op"] / small.ms["no-op"]
    print(f"  no-op: {', '.join(f'{ms:.2f}' for ms in noop)} ms/tenant at"
          f" {', '.join(str(size.tenants) for size in sizes)} (<= 0.3 ms:"
          f" {verdict(max(noop) <= 0.3)}; {large.tenants} vs {small.tenants}"
          f" {flat:.2f}x, flat (<= 1.2x): {verdict(flat <= 1.2)})")  # fmt: skip
    parallel = large.ms["parallel floor"] / large.ms["workers=4"]
    print(f"  workers=4 speed / parallel floor's at {large.tenants}: {parallel:.2f}"
          f" (>= 0.8: {verdict(parallel >= 0.8)})")  # fmt: skip
    rss = large.rss_kib / small.rss_kib
    print(f"  peak RSS {large.tenants} vs {small.tenants} tenants: {rss:.2f}x"
          f" ({large.rss_kib / 1024:.0f} vs {small.rss_kib / 1024:.0f} MiB;"
          f" <= 1.3x: {verdict(rss <= 1.3)})")  # fmt: skip
    speedup = process_ms / large.ms["default cli"]
    print(f"  process per tenant / default CLI at {large.tenants}: {speedup:.1f}x"
          f" (>= 30x: {verdict(speedup >= 30)})")  # fmt: skip
    for contender in ("default", "compiled", "floor"):
        per_rev_5 = mid.ms[contender] / len(REVISIONS)
        per_rev_n = lots.ms[contender] / revisions
        print(f"  {contender}: {per_rev_5:.2f} ms per tenant-revision with"
              f" {len(REVISIONS)} revisions, {per_rev_n:.2f} with"
              f" {revisions}")  # fmt: skip


def timeouts_cost(server: sa.URL, root: Path, n: int, rounds: int) -> None:
    """The default fleet with and without the timeouts, alternating, each on a
    fresh database: the median difference, and its spread."""
    off = {"lock_timeout": "0", "statement_timeout": "0"}
    with_ms: list[float] = []
    without_ms: list[float] = []
    names = [f"t_{i:05d}" for i in range(n)]
    for _ in range(rounds):
        for results, attributes in ((with_ms, {}), (without_ms, off)):
            with throwaway_database(server) as url:
                set_url(root, url)
                create_schemas(url, names)
                results.append(ms_per(in_process(root, names, **attributes), n))
    diffs = sorted(a - b for a, b in zip(with_ms, without_ms, strict=True))
    median = statistics.median(diffs)
    print(f"\nTimeouts ({rounds} alternating rounds of {n} tenants):"
          f" with {statistics.median(with_ms):.2f}, without"
          f" {statistics.median(without_ms):.2f} ms/tenant; difference median"
          f" {median:+.3f} ms (from {diffs[0]:+.3f} to {diffs[-1]:+.3f});"
          f" <= 1 ms: {verdict(median <= 1)}")  # fmt: skip


READS = (
    "reads",
    'op.create_table("reads", sa.Column("id", sa.Integer, primary_key=True),'
    ' sa.Column("n", sa.Integer))\n'
    'n = op.get_bind().execute(sa.text("SELECT count(*) FROM customer")).scalar()\n'
    'op.execute(sa.text("INSERT INTO reads (n) VALUES (:n)").bindparams(n=n))',
)


def segments(server: sa.URL, workdir: Path, n: int, rounds: int) -> None:
    """A 10-revision chain with one database-reading revision (5th) against
    the same chain with a plain one there, alternating, each on a fresh
    database; and the reading chain with nothing replayed (compiled=false:
    what every tenant paid before paths were split)."""
    chain = many_revisions(10)
    plain_root, reads_root = workdir / "seg-plain", workdir / "seg-reads"
    placeholder = server.set(database="placeholder")
    for root, revisions in (
        (plain_root, chain),
        (reads_root, [*chain[:4], READS, *chain[5:]]),
    ):
        root.mkdir()
        make_project(root, placeholder.render_as_string(hide_password=False), revisions)
    names = [f"t_{i:05d}" for i in range(n)]
    results: dict[str, list[float]] = {"plain": [], "split": [], "unsplit": []}
    for _ in range(rounds):
        for label, root, attributes in (
            ("plain", plain_root, {}),
            ("split", reads_root, {}),
            ("unsplit", reads_root, {"compiled": False}),
        ):
            with throwaway_database(server) as url:
                set_url(root, url)
                create_schemas(url, names)
                os.chdir(root)
                results[label].append(ms_per(in_process(root, names, **attributes), n))
    ratios = sorted(
        s / p for s, p in zip(results["split"], results["plain"], strict=True)
    )
    before = sorted(
        u / p for u, p in zip(results["unsplit"], results["plain"], strict=True)
    )
    median = statistics.median
    print(f"\nOne database-reading revision in 10 ({rounds} alternating rounds of"
          f" {n} tenants): plain chain {median(results['plain']):.2f}, split"
          f" {median(results['split']):.2f}, not replayed at all"
          f" {median(results['unsplit']):.2f} ms/tenant; split / plain median"
          f" {median(ratios):.2f}x (from {ratios[0]:.2f} to {ratios[-1]:.2f});"
          f" <= 1.3x: {verdict(median(ratios) <= 1.3)}; not replayed / plain"
          f" {median(before):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
