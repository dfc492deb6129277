"""Benchmark: 4 claiming runners against 4 static shards, side by side.

N PostgreSQL tenant schemas (the 5-revision chain of ``bench/multitenant.py``),
migrated by 4 ``alembic`` processes started together: either ``-x
shard=claim -x run=ID`` (each claims the next tenant from the run's claims) or
``-x shard=K/4`` (each a fixed quarter).  Wall clock from the start of the
first process to the end of the last, on fresh schemas each round; contenders
alternate, ``--rounds`` times.  Also: commits per tenant in the database
(``pg_stat_database``): what claiming adds to the tenants' own transactions.

    python bench/claiming.py [--tenants 1000] [--rounds 3] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multitenant import (
    BIN,
    add_pg_url,
    create_schemas,
    make_project,
    throwaway_database,
    transactions,
)

RUNNERS = 4


def contender(root: Path, url: sa.URL, n: int, mode: str, round_: int) -> float:
    """Seconds for 4 processes of *mode* to migrate *n* new schemas."""
    prefix = f"{mode[0]}{round_}"
    create_schemas(url, [f"{prefix}_{i:05d}" for i in range(n)])
    ini = root / "alembic.ini"
    text = ini.read_text()
    old = next(
        line for line in text.splitlines() if line.startswith("tenants_pattern = ")
    )
    ini.write_text(text.replace(old, f"tenants_pattern = {prefix}_*"))
    run = uuid.uuid4().hex[:12]
    args = [
        ["-x", "shard=claim", "-x", f"run={run}"]
        if mode == "claim"
        else ["-x", f"shard={k}/{RUNNERS}"]
        for k in range(RUNNERS)
    ]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [str(BIN / "alembic"), "-x", "tenant=all", *extra, "upgrade", "head"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in args
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"{mode} runner failed:\n{err}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    add_pg_url(parser)
    args = parser.parse_args()
    server = sa.make_url(args.pg_url).set(drivername="postgresql+psycopg")
    n = args.tenants
    seconds: dict[str, list[float]] = {"shards": [], "claim": []}
    commits: dict[str, list[float]] = {"shards": [], "claim": []}
    print(f"alembic at {BIN}; {n} tenants, {RUNNERS} processes, {args.rounds} rounds")
    for round_ in range(args.rounds):
        for mode in ("shards", "claim") if round_ % 2 == 0 else ("claim", "shards"):
            with throwaway_database(server) as url:
                root = Path(tempfile.mkdtemp(prefix="ar-bench-claim-"))
                try:
                    make_project(root, url.render_as_string(hide_password=False))
                    before = transactions(url)[0]
                    took = contender(root, url, n, mode, round_)
                    after = transactions(url)[0]
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            seconds[mode].append(took)
            commits[mode].append((after - before) / n)
            per = (after - before) / n
            print(f"  round {round_ + 1} {mode:<6}: {took:6.2f} s, {per:.2f} commits"
                  " per tenant", flush=True)  # fmt: skip
    shards, claim = (statistics.median(seconds[m]) for m in ("shards", "claim"))
    ratios = [s / c for s, c in zip(seconds["shards"], seconds["claim"], strict=True)]
    print(f"\n| contender | wall clock (median of {args.rounds}) | ms per tenant |"
          " commits per tenant |")  # fmt: skip
    print("| --- | ---: | ---: | ---: |")
    for mode, label in (("shards", "4 static shards"), ("claim", "4 claiming runners")):
        median = statistics.median(seconds[mode])
        print(f"| {label} | {median:.2f} s | {median * 1000 / n:.2f} |"
              f" {statistics.median(commits[mode]):.2f} |")  # fmt: skip
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"\nclaiming speed / static shards' speed: {shards / claim:.2f}x"
          f" (rounds: {rounds}; target >= 0.80x)")  # fmt: skip


if __name__ == "__main__":
    main()
