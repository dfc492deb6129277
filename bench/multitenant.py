"""Benchmark: migrating a fleet of PostgreSQL tenant schemas (multitenant template).

Creates a throwaway database with N tenant schemas per contender and a project
(``alembic init -t multitenant``) with a chain of 5 revisions (tables, indexes,
column adds), then measures, in one run, side by side:

1. fleet upgrade in one process: ``alembic -x tenant=all upgrade head`` (wall
   clock of the real CLI), and the same loop called in-process
   (``command.upgrade``), which leaves out interpreter start-up;
2. one ``alembic -x tenant=X upgrade head`` process per tenant (the cookbook's
   way): a sample of ``--sample`` tenants is timed and extrapolated to N;
3. the raw-SQL floor: the ``--sql`` output for one tenant, executed for every
   schema on one connection, one transaction per tenant;
4. the no-op fleet run (every tenant at head), CLI and in-process.

Prints ms per tenant and the ratios.  Usage::

    python bench/multitenant.py [--tenants 200] [--sample 20] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def alembic(root: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "alembic"), *args], cwd=root, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"alembic {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def make_project(root: Path, url: str) -> None:
    alembic(root, "init", "-t", "multitenant", "migrations")
    ini = root / "alembic.ini"
    text = ini.read_text()
    text = text.replace("tenant_strategy = database", "tenant_strategy = schema")
    text = text.replace(
        "sqlalchemy.url = sqlite:///%(here)s/tenants/{tenant}.db",
        f"sqlalchemy.url = {url}",
    )
    # -x tenant=all selects the CLI contender's schemas
    text = text.replace("tenants = acme, globex", "tenants_pattern = c_*")
    ini.write_text(text)
    for message, body in REVISIONS:
        alembic(root, "revision", "-m", message)
        path = max(
            (root / "migrations" / "versions").glob("*.py"), key=os.path.getmtime
        )
        source = path.read_text()  # imports op and sa, as stock Alembic's do
        indented = "\n".join(f"    {line}" for line in body.splitlines())
        source = source.replace(
            '"""Upgrade schema."""\n', f'"""Upgrade schema."""\n{indented}\n'
        )
        path.write_text(source)
        time.sleep(0.01)  # distinct mtimes: revisions chain in order


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--sample", type=int, default=20)
    add_pg_url(parser)
    args = parser.parse_args()
    n, sample = args.tenants, min(args.sample, args.tenants)

    server = sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    with throwaway_database(server) as url:
        run(url, n, sample)


def run(url: sa.URL, n: int, sample: int) -> None:
    """Every contender, side by side, on the database *url*."""
    engine = sa.create_engine(url)
    workdir = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    try:
        groups = {
            "cli": "c",
            "inproc": "u",
            "compiled cli": "k",
            "compiled inproc": "v",
            "floor": "r",
            "process": "p",
        }
        with engine.begin() as conn:
            for prefix in groups.values():
                count = sample if prefix == "p" else n
                for i in range(count):
                    conn.exec_driver_sql(f"CREATE SCHEMA {prefix}_{i:04d}")
            conn.exec_driver_sql("CREATE SCHEMA floor_template")
        url_text = url.render_as_string(hide_password=False)
        make_project(workdir, url_text)

        # 1. fleet, CLI and in-process
        ini = workdir / "alembic.ini"
        t0 = time.perf_counter()
        alembic(workdir, "-x", "tenant=all", "upgrade", "head")
        fleet_cli = time.perf_counter() - t0

        compiled_names = ",".join(f"k_{i:04d}" for i in range(n))
        t0 = time.perf_counter()
        alembic(workdir, "-x", f"tenant={compiled_names}", "-x", "compiled=true",
                "upgrade", "head")  # fmt: skip
        compiled_cli = time.perf_counter() - t0

        logging.getLogger("alembic").setLevel(logging.WARNING)
        os.chdir(workdir)

        def in_process(prefix: str, **attributes: object) -> float:
            cfg = Config(str(ini))
            cfg.attributes["configure_logger"] = False
            cfg.attributes["tenant"] = [f"{prefix}_{i:04d}" for i in range(n)]
            cfg.attributes.update(attributes)
            t0 = time.perf_counter()
            command.upgrade(cfg, "head")
            return time.perf_counter() - t0

        fleet_inproc = in_process("u")
        compiled_inproc = in_process("v", compiled=True)

        # 2. one process per tenant (sample, extrapolated)
        t0 = time.perf_counter()
        for i in range(sample):
            alembic(workdir, "-x", f"tenant=p_{i:04d}", "upgrade", "head")
        per_process = (time.perf_counter() - t0) / sample

        # 3. raw SQL floor
        script = alembic(
            workdir, "-x", "tenant=floor_template", "upgrade", "head", "--sql"
        )
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            t0 = time.perf_counter()
            for i in range(n):
                cursor.execute(script.replace("floor_template", f"r_{i:04d}"))
                raw.commit()
            floor = time.perf_counter() - t0
        finally:
            raw.close()

        # 4. no-op fleet runs
        t0 = time.perf_counter()
        alembic(workdir, "-x", "tenant=all", "upgrade", "head")
        noop_cli = time.perf_counter() - t0
        noop_inproc = in_process("u")

        with engine.connect() as conn:
            done = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables"
                    " WHERE table_name = 'line_item'"
                )
            )
        expected = 5 * n + sample
        assert done == expected, f"{done} tenants migrated, expected {expected}"

        rows = [
            ("fleet upgrade, one alembic process (CLI wall)", ms_per(fleet_cli, n)),
            ("fleet upgrade, in-process loop", ms_per(fleet_inproc, n)),
            (
                "compiled fleet upgrade (-x compiled=true), CLI wall",
                ms_per(compiled_cli, n),
            ),
            ("compiled fleet upgrade, in-process loop", ms_per(compiled_inproc, n)),
            (
                f"one alembic process per tenant (sample of {sample}, extrapolated)",
                per_process * 1000,
            ),
            ("raw SQL floor (--sql output on one connection)", ms_per(floor, n)),
            ("no-op fleet run, CLI wall", ms_per(noop_cli, n)),
            ("no-op fleet run, in-process loop", ms_per(noop_inproc, n)),
        ]
        print(f"\n{n} tenant schemas x {len(REVISIONS)} revisions on PostgreSQL\n")
        for label, value in rows:
            print(f"  {label:<66} {value:8.2f} ms/tenant")
        print()
        for label, cli, inproc in (
            ("default", fleet_cli, fleet_inproc),
            ("compiled", compiled_cli, compiled_inproc),
        ):
            print(f"  {label}: process-per-tenant / fleet (CLI wall):"
                  f" {per_process / (cli / n):6.1f}x  (target >= 30x)")  # fmt: skip
            print(f"  {label}: fleet in-process / raw SQL floor:"
                  f"      {inproc / floor:6.2f}x  (target <= 1.5x)")  # fmt: skip
        noop = ms_per(noop_inproc, n)
        print(f"  no-op fleet, in-process: {noop:.2f} ms/tenant (target <= 1 ms)")
    finally:
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
