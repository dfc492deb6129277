"""The Kubernetes Jobs in deploy/kubernetes/: the claiming Job (a kustomize
base and a per-release overlay) and the Indexed Job of fixed shards.  Their
manifests pass the Kubernetes schema of several releases and the restricted
Pod Security profile's rules; their behaviour is simulated with real processes
against the real database -- one process per pod, with the environment
Kubernetes gives it (``JOB_COMPLETION_INDEX``; the Job's name for
``$(RUN_ID)``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from alembic_recipes.tenants.selection.selection import in_shard
from support.processes import DEADLINE, cli_environment, spawn
from support.projects import Project
from support.servers import ServerDB

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
MANIFEST = DEPLOY / "migrate-tenants-indexed-job.yaml"
CLAIMING = DEPLOY / "base" / "migrate-tenants-job.yaml"
VERSIONS = ("1.29.0", "1.31.0", "1.33.0")
# four tenants in each of three shards: every pod has 2 s of work or more
TENANTS = [
    name
    for k in range(3)
    for name in [n for n in (f"t{i:02d}" for i in range(100)) if in_shard(n, k, 3)][:4]
]


def _manifest(path: Path = MANIFEST) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _restricted(doc: dict[str, Any]) -> None:
    """What a platform team asks of a migration Job: Pod Security
    "restricted", no service-account token, a failing migration not retried,
    a disruption not counted, bounded in time, a grace period longer than
    the package's stop, resources set, the password from a Secret."""
    for version in VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert spec["activeDeadlineSeconds"] > 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [255]
    assert rules[0]["action"] in ("FailJob", "FailIndex")
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert container["resources"]["limits"]["memory"]
    secret = {e["name"]: e for e in container["env"]}["DATABASE_URL"]
    assert "secretKeyRef" in secret["valueFrom"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_claiming_job_is_what_a_platform_team_ships() -> None:
    doc = _manifest(CLAIMING)
    _restricted(doc)
    spec = doc["spec"]
    assert "completions" not in spec  # a work queue: runners, not shards
    container = spec["template"]["spec"]["containers"][0]
    assert "shard=claim" in container["command"]
    assert "run=$(RUN_ID)" in container["command"]
    run_id = {e["name"]: e for e in container["env"]}["RUN_ID"]
    assert run_id["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )


def test_the_release_overlay_names_the_job_per_release() -> None:
    """``kubectl kustomize`` renders the overlay: the base Job, named and
    imaged for the release (rendered in Python where kubectl is missing)."""
    overlay = DEPLOY / "overlays" / "release"
    settings = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        rendered = subprocess.run(
            [kubectl, "kustomize", str(overlay)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        doc = yaml.safe_load(rendered)
    else:
        doc = _manifest(CLAIMING)
        doc["metadata"]["name"] += settings["nameSuffix"]
        (image,) = settings["images"]
        container = doc["spec"]["template"]["spec"]["containers"][0]
        container["image"] = f"{image['name']}:{image['newTag']}"
    _restricted(doc)
    assert doc["metadata"]["name"] == "migrate-tenants" + settings["nameSuffix"]
    image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":" + settings["images"][0]["newTag"])


def test_the_manifest_is_a_valid_indexed_job() -> None:
    doc = _manifest()
    _restricted(doc)
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
    deadline = time.monotonic() + DEADLINE
    while not _applied(pg) and time.monotonic() < deadline:
        time.sleep(0.05)  # a first tenant done: every pod is inside its shard
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


def _runner(proj: Project, job: str) -> Any:
    """One pod of the claiming Job: its command, ``$(RUN_ID)`` expanded as
    Kubernetes expands it from the Job's name."""
    command = _manifest(CLAIMING)["spec"]["template"]["spec"]["containers"][0]
    args = [arg.replace("$(RUN_ID)", job) for arg in command["command"][1:]]
    return spawn(proj, *args[:-2], "-x", "claim_lease=2s", *args[-2:])


@pytest.mark.concurrency
def test_the_claiming_job_survives_an_evicted_pod(job: Project, pg: ServerDB) -> None:
    """Three pods; one SIGKILLed inside a migration: the others finish the
    run (its tenant taken over after the lease), each tenant migrated once,
    and a pod Kubernetes starts again finds the run finished."""
    pods = [_runner(job, "migrate-tenants-1-4-2") for _ in range(3)]
    deadline = time.monotonic() + DEADLINE
    while not _applied(pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pods[1].pid, signal.SIGKILL)  # evicted: no chance to clean up
    pods[1].communicate(timeout=DEADLINE)
    _finish([pods[0], pods[2]])
    assert _applied(pg) == dict.fromkeys(TENANTS, 1)  # every tenant, once
    again = _runner(job, "migrate-tenants-1-4-2")
    _, err = again.communicate(timeout=DEADLINE)
    assert again.returncode == 0, err
    assert "finished before this runner started: nothing to do" in err


SPARES = DEPLOY / "fill-spares-cronjob.yaml"


def test_the_spares_cronjob_is_what_a_platform_team_ships() -> None:
    """The CronJob passes the schemas; its Job passes the Job's rules; one
    run at a time, done before the next is due."""
    doc = _manifest(SPARES)
    for version in VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)
    spec = doc["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fill"}}
    _restricted({**job, "spec": spec["jobTemplate"]["spec"]})
    every = int(spec["schedule"].split()[0].removeprefix("*/"))
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < every * 60


@pytest.mark.concurrency
def test_overlapping_spares_cronjob_pods_make_each_spare_once(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """Two pods of the CronJob at once (a run that overlapped the next, a
    manual ``kubectl create job --from``), ``sqlalchemy.url`` from the pod's
    ``DATABASE_URL``: three spares in all, made once, both pods exit 0."""
    proj = project("multitenant", url="${DATABASE_URL}")
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "")
    proj.set_option("provision", "snapshot")
    proj.set_option("provision_spares", "3")
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    env = {**cli_environment(), "DATABASE_URL": pg.driver_url("psycopg")}
    fleet = spawn(
        proj, "-x", "tenant=all", "-x", "spares=0", "upgrade", "head", env=env
    )
    _finish([fleet])  # the template, no spares yet
    container = _manifest(SPARES)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    command = container["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "alembic_recipes"]
    pods = [
        subprocess.Popen(
            [sys.executable, *command[1:]],
            cwd=proj.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    said = []
    for pod in pods:
        out, err = pod.communicate(timeout=DEADLINE)
        assert pod.returncode == 0, err
        said.append(out)
    # one filler at a time: the other found it at work, or took turns with it
    assert sum(int(out.split()[0]) for out in said) == 3, said
    with pg.engine().connect() as conn:
        spares = conn.execute(
            sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%~%'")
        ).scalars()
        assert len(list(spares)) == 3
