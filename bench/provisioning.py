"""Benchmark: a new schema tenant at head, from the snapshot against replaying
the history, side by side (PostgreSQL, schema strategy, psycopg).

Chains of 30, 120 and 500 revisions (``--lengths``) that end with the same
schema -- 10 tables with an index and a foreign key each, then revisions that
add a column and drop it again -- so that only the history's length differs.
Optionally a real history (``--history DIR``: a versions folder, e.g. ckan
2.12.0's, as ``pip install --no-deps ckan==2.12.0`` ships it).

Contenders, per chain, on one fresh database, each new tenant in-process
(the interpreter's start-up is not counted; Alembic's reading of the
revision files is, as it is part of every command):

* snapshot: ``provision_tenant(engine, name, config=...)`` with ``provision
  = snapshot`` (the template made and its snapshot captured first, once);
* spare: the same with ``provision_spares`` (the fleet run having made one
  spare schema per tenant measured): a sign-up renames one; the fill that
  made them (off the sign-up's path) is timed too, per spare;
* replay: ``command.upgrade`` of the new tenant (``-x create=true``), what
  ``provision = replay`` does;
* clone: a PL/pgSQL function cloning the template schema the way
  django-tenants' ``clone_schema`` does (tables ``LIKE ... INCLUDING ALL``,
  then foreign keys from ``pg_get_constraintdef``), written here for the
  comparison (it copies fewer kinds of objects than the snapshot).

Then 100 sign-ups at once from one event loop (asyncpg AsyncEngine, pool of
10) on the 120-revision chain.  Prints the median ms per tenant and ratios.

    python bench/provisioning.py [--lengths 30,120,500] [--tenants 9]
        [--history DIR] [--driver postgresql+asyncpg] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic_recipes import fill_spares, provision_tenant, provision_tenant_async
from multitenant import add_pg_url, make_project, set_url, throwaway_database
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TABLES = 10

CLONE = """
CREATE OR REPLACE FUNCTION bench_clone_schema(source text, dest text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE t record; c record;
BEGIN
  EXECUTE format('CREATE SCHEMA %I', dest);
  FOR t IN SELECT relname FROM pg_class
           WHERE relnamespace = source::regnamespace AND relkind = 'r' LOOP
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)',
                   dest, t.relname, source, t.relname);
    EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.%I',
                   dest, t.relname, source, t.relname);
  END LOOP;
  FOR c IN SELECT conrelid::regclass::text AS tbl, conname,
                  pg_get_constraintdef(oid) AS def
           FROM pg_constraint
           WHERE connamespace = source::regnamespace AND contype = 'f' LOOP
    EXECUTE format('ALTER TABLE %I.%s ADD CONSTRAINT %I %s', dest,
                   split_part(c.tbl, '.', 2), c.conname,
                   replace(c.def, source || '.', dest || '.'));
  END LOOP;
END $$;
"""


def chain(length: int) -> list[tuple[str, str]]:
    """*length* revisions ending in the same schema whatever *length* is."""
    revisions = [("kinds", 'op.create_table("kinds", sa.Column("id", sa.Integer,'
                  ' primary_key=True), sa.Column("name", sa.Text))')]  # fmt: skip
    for i in range(TABLES - 1):
        revisions.append(
            (
                f"t{i}",
                f'op.create_table("t{i}", sa.Column("id", sa.Integer,'
                ' primary_key=True), sa.Column("kind_id", sa.Integer,'
                ' sa.ForeignKey("kinds.id")), sa.Column("v", sa.String(20)))\n'
                f'op.create_index("ix_t{i}_v", "t{i}", ["v"])',
            )
        )
    for i in range(length - len(revisions)):
        table = f"t{(i // 2) % (TABLES - 1)}"
        body = (
            f'op.add_column("{table}", sa.Column("x", sa.Integer))'
            if i % 2 == 0
            else f'op.drop_column("{table}", "x")'
        )
        revisions.append((f"step {i}", body))
    return revisions


def history_revisions(folder: Path, root: Path) -> None:
    """Replace the project's revisions with the files of *folder*."""
    versions = root / "migrations" / "versions"
    for path in versions.glob("*.py"):
        path.unlink()
    for path in sorted(folder.glob("*.py")):
        if path.name != "__init__.py":
            shutil.copy(path, versions / path.name)


def timed(fn: object, *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - started


DRIVER = "postgresql+psycopg"
"""The driver of the project's URL (``--driver``: a history may need its own)."""


def replay(root: Path, name: str) -> None:
    config = Config(str(root / "alembic.ini"))
    config.attributes.update(tenant=name, create=True, provision="replay")
    with contextlib.chdir(root):
        command.upgrade(config, "head")


def sign_up(engine: sa.Engine | AsyncEngine, name: str, config: Config) -> None:
    """One sign-up on the application's engine (awaited where it is async)."""
    if isinstance(engine, AsyncEngine):
        asyncio.run(provision_tenant(engine, name, config=config))
    else:
        provision_tenant(engine, name, config=config)


def measure(root: Path, url: sa.URL, tenants: int) -> dict[str, float]:
    """Median ms per new tenant of each contender on the project in *root*."""
    ini = root / "alembic.ini"
    text = ini.read_text().replace("tenants_pattern = t_*", "tenants =")
    ini.write_text(text + "\n")
    set_url(root, url.set(drivername=DRIVER))
    config = Config(str(ini))
    config.set_main_option("provision", "snapshot")
    spare = Config(str(ini))
    spare.set_main_option("provision", "snapshot")
    spare.set_main_option("provision_spares", str(tenants))
    with contextlib.chdir(root):  # the template, its snapshot captured
        config.attributes.update(tenant="all")
        command.upgrade(config, "head")
        config.attributes.pop("tenant")
        fill = timed(fill_spares, None, config=spare) / tenants
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql(CLONE, execution_options={"no_parameters": True})
    shared = (  # the application's engine, of the project's driver
        create_async_engine(url.set(drivername=DRIVER), poolclass=sa.pool.NullPool)
        if DRIVER.endswith("asyncpg")
        else engine
    )
    results: dict[str, list[float]] = {
        "snapshot": [], "spare": [], "replay": [], "clone": []
    }  # fmt: skip
    for i in range(tenants):  # alternating, so that drift hits all alike
        results["snapshot"].append(timed(sign_up, shared, f"s{i}", config))
        results["spare"].append(timed(sign_up, shared, f"p{i}", spare))
        results["replay"].append(timed(replay, root, f"r{i}"))

        def clone(name: str) -> None:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("SELECT bench_clone_schema('_template', :d)"), {"d": name}
                )

        results["clone"].append(timed(clone, f"c{i}"))
    engine.dispose()
    ms = {k: statistics.median(v) * 1000 for k, v in results.items()}
    return {**ms, "fill": fill * 1000}


def sign_ups(root: Path, url: sa.URL, count: int) -> float:
    """Seconds for *count* sign-ups at once from one event loop."""
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("provision", "snapshot")

    async def run() -> float:
        engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
        started = time.perf_counter()
        done = await asyncio.gather(
            *(provision_tenant_async(engine, f"u{i}", config=config)
              for i in range(count)),
            return_exceptions=True,
        )  # fmt: skip
        took = time.perf_counter() - started
        await engine.dispose()
        failed = [d for d in done if d is not None]
        assert not failed, failed[:3]
        return took

    return asyncio.run(run())


def main() -> None:
    global DRIVER
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="30,120,500")
    parser.add_argument("--tenants", type=int, default=9)
    parser.add_argument("--sign-ups", type=int, default=100)
    parser.add_argument("--history", help="a versions folder of a real history")
    parser.add_argument("--driver", default=DRIVER, help="the project's driver")
    add_pg_url(parser)
    args = parser.parse_args()
    DRIVER = args.driver
    logging.disable(logging.WARNING)
    server = sa.make_url(args.pg_url)
    chains: list[tuple[str, list[tuple[str, str]] | Path]] = [
        (f"{n} revisions", chain(int(n))) for n in args.lengths.split(",") if n
    ]
    if args.history:
        chains.append((f"history {args.history}", Path(args.history)))
    print(f"{'chain':<24}{'snapshot':>9}{'spare':>7}{'replay':>9}{'clone':>8}"
          f"{'fill':>8}{'replay/snapshot':>16}{'replay/spare':>13}")  # fmt: skip
    for label, revisions in chains:
        with tempfile.TemporaryDirectory() as tmp, throwaway_database(server) as url:
            root = Path(tmp)
            with contextlib.redirect_stdout(io.StringIO()):
                if isinstance(revisions, Path):
                    make_project(root, url.render_as_string(hide_password=False), [])
                    history_revisions(revisions, root)
                else:
                    make_project(
                        root, url.render_as_string(hide_password=False), revisions
                    )
            ms = measure(root, url, args.tenants)
            print(
                f"{label[:23]:<24}{ms['snapshot']:>9.1f}{ms['spare']:>7.1f}"
                f"{ms['replay']:>9.1f}{ms['clone']:>8.1f}{ms['fill']:>8.1f}"
                f"{ms['replay'] / ms['snapshot']:>15.1f}x"
                f"{ms['replay'] / ms['spare']:>12.1f}x"
            )
            if label.startswith("120 ") and args.sign_ups:
                took = sign_ups(root, url, args.sign_ups)
                print(
                    f"  {args.sign_ups} sign-ups at once (one event loop): all made"
                    f" in {took:.2f} s, {took * 1000 / args.sign_ups:.1f} ms each"
                )


if __name__ == "__main__":
    main()
