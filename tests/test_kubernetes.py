"""The documented Kubernetes Indexed Job (docs/kubernetes/): its manifest
passes a Kubernetes schema validator, and its behaviour is simulated with
real processes against the real database -- one process per pod, with
``JOB_COMPLETION_INDEX`` and ``JOB_COMPLETIONS`` set as Kubernetes sets them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from alembic_recipes.tenants.selection import in_shard
from conftest import DEADLINE, Project, ServerDB, cli_environment, spawn

MANIFEST = (
    Path(__file__).parent.parent / "docs" / "kubernetes" / "migrate-tenants-job.yaml"
)
# four tenants in each of three shards: every pod has 2 s of work or more
TENANTS = [
    name
    for k in range(3)
    for name in [n for n in (f"t{i:02d}" for i in range(100)) if in_shard(n, k, 3)][:4]
]


def _manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(MANIFEST.read_text()))


def test_the_manifest_is_a_valid_indexed_job() -> None:
    doc = _manifest()
    kubernetes_validate.validate(doc, "1.33.0", strict=True)
    spec = doc["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JOB_COMPLETIONS"] == str(spec["completions"])
    assert container["command"][:5] == [
        "alembic",
        "-x",
        "tenant=all",
        "-x",
        "shard=auto",
    ]


@pytest.fixture
def job(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> Project:
    """Twelve listed tenant schemas; every migration of a tenant also counts
    itself in public.applied (in the tenant's transaction)."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", ", ".join(TENANTS))
    monkeypatch.chdir(proj.root)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE public.applied (tenant text)")
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    proj.revision(
        "r2",
        upgrade='op.execute("SELECT pg_sleep(0.5)")\n'
        'op.execute("INSERT INTO public.applied SELECT current_schema()")',
    )
    return proj


def _pod(proj: Project, index: int, completions: int) -> Any:
    """One pod of the Job: the manifest's command, its environment."""
    command = _manifest()["spec"]["template"]["spec"]["containers"][0]["command"]
    env = {
        **cli_environment(),
        "JOB_COMPLETION_INDEX": str(index),
        "JOB_COMPLETIONS": str(completions),
    }
    return spawn(proj, *command[1:], env=env)


def _applied(pg: ServerDB) -> dict[str, int]:
    with pg.engine().connect() as conn:
        rows = conn.execute(
            sa.text("SELECT tenant, count(*) FROM public.applied GROUP BY tenant")
        ).all()
    return {str(t): int(n) for t, n in rows}


def _finish(pods: list[Any]) -> None:
    for pod in pods:
        _, err = pod.communicate(timeout=DEADLINE)
        assert pod.returncode == 0, err


@pytest.mark.concurrency
def test_a_killed_pod_started_again_finishes_its_shard(
    job: Project, pg: ServerDB
) -> None:
    pods = [_pod(job, k, 3) for k in range(3)]
    time.sleep(1.5)  # each pod is inside some tenant's migration by now
    os.kill(pods[1].pid, signal.SIGKILL)  # evicted: no chance to clean up
    pods[1].communicate(timeout=DEADLINE)
    _finish([pods[0], pods[2]])
    assert sum(_applied(pg).values()) < len(TENANTS)  # shard 1 is unfinished
    _finish([_pod(job, 1, 3)])  # Kubernetes starts the index again
    assert _applied(pg) == dict.fromkeys(TENANTS, 1)  # every tenant, once


@pytest.mark.concurrency
def test_two_jobs_started_together_migrate_each_tenant_once(
    job: Project, pg: ServerDB
) -> None:
    pods = [_pod(job, k, 3) for k in range(3)] + [_pod(job, k, 3) for k in range(3)]
    _finish(pods)
    assert _applied(pg) == dict.fromkeys(TENANTS, 1)
