"""Provisioning tenants from a snapshot of the template tenant
(``provision = snapshot``): what it makes is what replaying the history makes,
object for object; it is one transaction; it refuses what it must.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.util import CommandError
from alembic_recipes import (
    drop_tenant,
    fill_spares,
    fill_spares_async,
    provision_tenant,
    provision_tenant_async,
    rename_tenant,
)
from sqlalchemy.ext.asyncio import create_async_engine
from support.processes import cli_environment, recipes, spawn, until
from support.projects import Project
from support.servers import ServerDB, schema_dump, waiting_for_locks

# -- a history holding every kind of object the snapshot must copy ------------
CHAIN = {
    "shared plans, types, a seed table": """\
op.execute("CREATE TABLE IF NOT EXISTS public.plans (id integer PRIMARY KEY)")
op.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
op.execute("CREATE DOMAIN posint AS integer CHECK (VALUE > 0)")
op.create_table(
    "kinds",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, server_default="x"),
)
op.execute("INSERT INTO kinds (name) VALUES ('basic'), ('pro')")""",
    "users with identity, foreign keys, index, comments": """\
op.execute(
    "CREATE TABLE users (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name text, m mood, p posint, plan_id integer REFERENCES public.plans (id),"
    " kind_id integer REFERENCES kinds (id) ON DELETE CASCADE)"
)
op.create_index("ix_users_name", "users", ["name"], unique=True)
op.execute("COMMENT ON TABLE users IS 'the users'")
op.execute("COMMENT ON COLUMN users.name IS 'their name'")
op.add_column("kinds", sa.Column("extra", sa.Integer))
op.drop_column("kinds", "extra")""",
    "views, functions, triggers, policies, grants": """\
op.execute(
    "CREATE VIEW v_users AS SELECT u.name, k.name AS kind FROM users u"
    " JOIN kinds k ON k.id = u.kind_id"
)
op.execute("CREATE MATERIALIZED VIEW mv_kinds AS SELECT id, name FROM kinds")
op.execute(
    "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN NEW.name := lower(NEW.name); RETURN NEW; END $$"
)
op.execute(
    "CREATE TRIGGER t_touch BEFORE INSERT ON users FOR EACH ROW"
    " EXECUTE FUNCTION touch()"
)
op.execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
op.execute("CREATE POLICY p_visible ON users USING (name <> 'hidden')")
op.execute("GRANT SELECT ON users TO PUBLIC")
op.execute("CREATE SEQUENCE invoice_numbers START 1000")""",
}


def _revisions(proj: Project, chain: dict[str, str]) -> list[str]:
    return [proj.revision(message, upgrade=body) for message, body in chain.items()]


def _chain(proj: Project) -> list[str]:
    return _revisions(proj, CHAIN)


@pytest.fixture
def snap(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> Project:
    proj = project("multitenant", url=pg.driver_url("psycopg"), prepare=_chain)
    monkeypatch.chdir(proj.root)  # where its users run it (script_location)
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "")
    proj.set_option("provision", "snapshot")
    proj.set_option("provision_seed", "kinds")
    return proj


def _dump(pg: ServerDB, schema: str) -> list[str]:
    return schema_dump(pg.url, schema, privileges=True)


def _rows(pg: ServerDB, sql: str) -> list[tuple[object, ...]]:
    with pg.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def _state(pg: ServerDB, schema: str) -> dict[str, object]:
    """What a tenant holds besides its DDL: versions, seed rows, where its
    sequences are, whether its materialized view is populated."""
    q = f'"{schema}"'
    return {
        "versions": _rows(pg, f"SELECT version_num FROM {q}.alembic_version"),
        "kinds": _rows(pg, f"SELECT id, name FROM {q}.kinds ORDER BY id"),
        "sequences": _rows(
            pg,
            "SELECT sequencename, last_value FROM pg_sequences"
            f" WHERE schemaname = '{schema}' ORDER BY sequencename",
        ),
        "mv": _rows(pg, f"SELECT id, name FROM {q}.mv_kinds ORDER BY id"),
    }


@pytest.mark.postgresql
def test_a_snapshot_tenant_equals_a_replayed_one(snap: Project, pg: ServerDB) -> None:
    """Every kind of object, the seed rows and the version: ``pg_dump -s``
    (grants included) of a tenant made from the snapshot equals that of a
    tenant made by replaying the history, line for line."""
    fleet = snap.alembic("-x", "tenant=all", "upgrade", "head")  # the template
    snap.alembic(
        "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
        "upgrade", "head",
    )  # fmt: skip
    out = snap.alembic("-x", "tenant=copied", "-x", "create=true", "upgrade", "head")
    replayed, copied = _dump(pg, "replayed"), _dump(pg, "copied")
    assert len(replayed) > 60
    assert copied == replayed
    assert _dump(pg, "_template") == replayed
    assert _state(pg, "copied") == _state(pg, "replayed")
    assert "Captured the snapshot of template tenant '_template'" in fleet.output
    assert "tenant 'copied': copied from the snapshot of '_template'" in out.output
    print(fleet.output, out.output)


def _schemas(pg: ServerDB) -> set[str]:
    return {
        str(name)
        for (name,) in _rows(
            pg,
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"
            " AND nspname NOT IN ('information_schema', 'public')",
        )
    }


def _config(proj: Project) -> Config:
    return Config(str(proj.ini))


@pytest.mark.postgresql
def test_concurrent_sign_ups_from_one_async_application(
    snap: Project, pg: ServerDB
) -> None:
    """100 sign-ups at once from one event loop on one AsyncEngine (half
    ``await provision_tenant_async()``, half ``await provision_tenant()``),
    92 of different names and 8 of one name: every new name is made at head,
    exactly one of the 8 makes its tenant and the 7 others get one error
    naming it."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    config = _config(snap)
    head = snap.prepared[-1]

    async def sign_ups() -> list[BaseException | None]:
        engine = create_async_engine(pg.driver_url("asyncpg"), pool_size=10)
        try:
            calls = [f"c{i:02d}" for i in range(92)] + ["same"] * 8
            # the awaitable twin, and the sync name awaited (an AsyncEngine)
            signs = (provision_tenant_async, provision_tenant) * 50
            done = await asyncio.gather(
                *(
                    sign(engine, n, config=config)
                    for sign, n in zip(signs, calls, strict=True)
                ),
                return_exceptions=True,
            )
            return list(done)
        finally:
            await engine.dispose()

    outcomes = asyncio.run(sign_ups())
    assert outcomes[:92] == [None] * 92
    same = outcomes[92:]
    assert same.count(None) == 1, same
    for failure in (o for o in same if o is not None):
        assert isinstance(failure, CommandError)
        assert str(failure).startswith("tenant 'same': its schema exists already")
    assert _schemas(pg) == {"_template", "same", *(f"c{i:02d}" for i in range(92))}
    expected = _dump(pg, "_template")
    for name in ("c00", "c91", "same"):
        assert _dump(pg, name) == expected
        assert _state(pg, name)["versions"] == [(head,)]


@pytest.mark.postgresql
@pytest.mark.parametrize("spares", ["0", "3"])
def test_same_name_sign_ups_without_the_lock_make_one_tenant(
    snap: Project, pg: ServerDB, spares: str
) -> None:
    """``migration_lock = false``: 6 sign-ups of one name at once, from a
    snapshot or a spare -- the server lets one make the schema, the others
    get the one-line "exists" error, not a driver's traceback."""
    snap.set_option("migration_lock", "false")
    snap.set_option("provision_spares", spares)
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    config = _config(snap)

    async def sign_ups() -> list[BaseException | None]:
        engine = create_async_engine(pg.driver_url("asyncpg"), pool_size=6)
        try:
            calls = (provision_tenant_async(engine, "same", config=config)
                     for _ in range(6))  # fmt: skip
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            await engine.dispose()

    done = asyncio.run(sign_ups())
    assert done.count(None) == 1, done
    for failure in (d for d in done if d is not None):
        assert isinstance(failure, CommandError), failure
        assert str(failure).startswith("tenant 'same': its schema exists already")
    assert _dump(pg, "same") == _dump(pg, "_template")


@pytest.mark.postgresql
def test_provisioning_refuses_what_it_must_and_sends_nothing(
    snap: Project, pg: ServerDB
) -> None:
    """A bad name, a tenant that exists, a missing template, a template at a
    revision this code does not know: one error each; nothing is made."""
    config = _config(snap)
    with pytest.raises(CommandError, match=r"^invalid tenant name 'Bad Name'"):
        provision_tenant(None, "Bad Name", config=config)
    with pytest.raises(CommandError, match="template tenant '_template' does not"):
        provision_tenant(None, "acme", config=config)
    assert _schemas(pg) == set()
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    provision_tenant(None, "acme", config=config)
    with pytest.raises(CommandError, match=r"^tenant 'acme': its schema exists"):
        provision_tenant(None, "acme", config=config)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE _template.alembic_version SET version_num = 'f00'")
    with pytest.raises(CommandError, match="at f00, which this code's migrations"):
        provision_tenant(None, "globex", config=config)
    assert _schemas(pg) == {"_template", "acme"}


@pytest.mark.postgresql
def test_a_template_behind_head_is_copied_then_brought_to_head(
    snap: Project, pg: ServerDB
) -> None:
    """The code has a revision the template has not had yet: the new tenant
    is copied at the template's version, then that revision runs as usual;
    it ends as a replayed tenant ends."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    newer = snap.revision(
        "email",
        upgrade='op.add_column("users", sa.Column("email", sa.Text))\n'
        'op.create_index("ix_users_email", "users", ["email"])',
    )
    provision_tenant(None, "late", config=_config(snap))
    # a fleet run leaving the template behind: copied, then the compiled
    # replay of what the template lacks
    snap.set_option("tenants", "fleet")
    snap.alembic("-x", "tenant=all,!_template", "upgrade", "head")
    snap.alembic(
        "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
        "upgrade", "head",
    )  # fmt: skip
    assert _state(pg, "late")["versions"] == [(newer,)]
    assert _dump(pg, "late") == _dump(pg, "replayed")
    assert _state(pg, "late") == _state(pg, "replayed")
    assert _dump(pg, "fleet") == _dump(pg, "replayed")
    assert _state(pg, "fleet") == _state(pg, "replayed")
    assert _state(pg, "_template")["versions"] == [(snap.prepared[-1],)]


@pytest.mark.postgresql
def test_the_command_line_makes_a_new_tenant_and_refuses_an_existing_one(
    snap: Project, pg: ServerDB
) -> None:
    """``alembic -x tenant=NAME -x new=true upgrade head``: the CLI of
    ``provision_tenant()``."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    new = ("-x", "tenant=acme", "-x", "new=true", "upgrade", "head")
    made = snap.alembic(*new, process=True)
    assert "tenant 'acme': copied from the snapshot of '_template'" in made.output
    again = snap.alembic(*new, ok=False, process=True)
    assert again.code == 255
    assert "FAILED: tenant 'acme': its schema exists already" in again.output
    assert _dump(pg, "acme") == _dump(pg, "_template")


@pytest.mark.postgresql
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_provisioning_cut_off_leaves_nothing_behind(
    snap: Project, pg: ServerDB, sig: signal.Signals
) -> None:
    """The copy is one transaction: stopped or killed while the application
    holds a lock it needs (``public.plans``, which its foreign key names),
    the tenant's schema, version and record row are not there, ``current``
    shows no such tenant -- and the next run makes it whole."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    with _plans_locked(pg):
        run = spawn(snap, "-x", "tenant=victim", "-x", "new=true", "upgrade", "head")
        until(lambda: waiting_for_locks(pg) > 0, "the copy to wait for the lock")
        run.send_signal(sig)
        run.communicate(timeout=60)
    assert run.returncode != 0
    assert "victim" not in _schemas(pg)
    status = snap.alembic("-x", "tenant=victim", "current")
    record = "SELECT tenant FROM public.alembic_recipes_fleet_run"
    with pg.engine().connect() as conn:
        if sa.inspect(conn).has_table("alembic_recipes_fleet_run"):
            assert ("victim",) not in _rows(pg, record)
    assert "head" not in status.stdout
    snap.alembic("-x", "tenant=victim", "-x", "new=true", "upgrade", "head")
    assert _dump(pg, "victim") == _dump(pg, "_template")


# -- spare schemas (provision_spares) -------------------------------------------
FILL = "from alembic_recipes.__main__ import main; main(['tenant', 'spares'])"
"""``python -m alembic_recipes tenant spares``, as a process of its own."""


@contextmanager
def _plans_locked(pg: ServerDB) -> Iterator[None]:
    """Meanwhile the application holds ACCESS EXCLUSIVE on ``public.plans``
    (which the tenants' foreign key names: their DDL waits for it)."""
    with pg.engine().connect() as holder:
        holder.begin()
        holder.exec_driver_sql("LOCK TABLE public.plans IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            holder.rollback()


def _sessions_ended(pg: ServerDB) -> None:
    """Until no session holds an advisory lock in the database: a killed
    process's session has ended on the server, as the next run finds it."""
    locks = (
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
    )
    until(lambda: _rows(pg, locks) == [(0,)], "the killed process's session to end")


SPARES = "SELECT name, heads FROM public.alembic_recipes_spare ORDER BY name"


def _spares(pg: ServerDB) -> set[str]:
    return {name for name in _schemas(pg) if "~" in name}


@pytest.mark.postgresql
def test_spare_schemas_make_a_sign_up_a_rename(snap: Project, pg: ServerDB) -> None:
    """``provision_spares = 3``: the fleet run makes three spare schemas at
    head, which no tenant selection takes; a sign-up renames one, and the
    tenant equals a replayed one; concurrent sign-ups past the spares copy
    the snapshot; a spare another session holds is skipped, not waited for;
    the template moving, or another seed list, makes them stale and the next
    fill replaces them; ``provision_spares = 0`` drops them."""
    snap.set_option("provision_spares", "3")
    snap.set_option("tenants_pattern", "*")
    fleet = snap.alembic("-x", "tenant=all", "upgrade", "head")
    assert "Made spare schema '_template~" in fleet.output
    head = snap.prepared[-1]
    assert len(_spares(pg)) == 3
    assert [h for _, h in _rows(pg, SPARES)] == [head] * 3
    again = snap.alembic("-x", "tenant=all", "upgrade", "head")  # spares: no tenants
    assert "~" not in again.output.replace("alembic_recipes_spare", "")
    status = snap.alembic("-x", "tenant=all", "current")
    assert "_template" in status.output and "~" not in status.output
    assert _rows(pg, "SELECT count(*) FROM public.alembic_recipes_fleet_run") == [(1,)]

    config = _config(snap)
    provision_tenant(None, "acme", config=config)
    snap.alembic(
        "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
        "upgrade", "head",
    )  # fmt: skip
    assert _dump(pg, "acme") == _dump(pg, "replayed")
    assert _state(pg, "acme") == _state(pg, "replayed")
    assert len(_spares(pg)) == 2 == len(_rows(pg, SPARES))

    holder = pg.engine().connect()  # a spare's row held: skipped, not waited on
    holder.begin()
    holder.exec_driver_sql(
        "SELECT name FROM public.alembic_recipes_spare ORDER BY made_at LIMIT 1"
        " FOR UPDATE"
    )
    try:

        async def sign_ups() -> list[BaseException | None]:
            engine = create_async_engine(pg.driver_url("asyncpg"))
            try:
                calls = (provision_tenant_async(engine, f"s{i}", config=config)
                         for i in range(4))  # fmt: skip
                return list(await asyncio.gather(*calls, return_exceptions=True))
            finally:
                await engine.dispose()

        assert asyncio.run(sign_ups()) == [None] * 4
    finally:
        holder.rollback()
        holder.close()
    assert len(_spares(pg)) == 1 == len(_rows(pg, SPARES))
    for name in ("s0", "s1", "s2", "s3"):
        assert _dump(pg, name) == _dump(pg, "replayed")

    made = _tenant_command(snap, "spares")
    assert (made.returncode, made.stdout) == (0, "2 spare schemas made\n"), made
    assert len(_spares(pg)) == 3

    newer = snap.revision(
        "email", upgrade='op.add_column("users", sa.Column("e", sa.Text))'
    )
    snap.alembic("-x", "tenant=_template", "upgrade", "head")
    assert [h for _, h in _rows(pg, SPARES)] == [newer] * 3
    provision_tenant(None, "late", config=config)
    assert _state(pg, "late")["versions"] == [(newer,)]
    assert _dump(pg, "late") == _dump(pg, "_template")

    snap.set_option("provision_seed", "")  # another snapshot: other spares
    assert fill_spares(None, config=_config(snap)) == 3
    provision_tenant(None, "unseeded", config=_config(snap))
    assert _state(pg, "unseeded")["kinds"] == [] != _state(pg, "late")["kinds"]

    snap.set_option("provision_spares", "0")
    assert fill_spares(None, config=_config(snap)) == 0
    assert _spares(pg) == set() and _rows(pg, SPARES) == []


@pytest.mark.postgresql
def test_a_fleet_stopped_while_it_fills_spares_tells_the_truth(
    snap: Project, pg: ServerDB
) -> None:
    """SIGTERM while the fleet fills spares after the template (a lock their
    DDL needs held by the application): the run ends within seconds, the
    template's line and record say what its version table says, not a
    failure; no spare is left half made; the next fill makes them."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")  # the template
    snap.set_option("provision_spares", "2")
    with _plans_locked(pg):
        run = spawn(
            snap, "-x", "tenant=all", "-x", "lock_timeout=60s", "upgrade", "head"
        )
        until(lambda: waiting_for_locks(pg) > 0, "the fill to wait for the lock")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    assert "Traceback" not in out + err, err
    assert "_template: already at head" in err, err
    assert "_template: FAILED" not in err and "_template: interrupted" not in err
    record = "SELECT tenant, status FROM public.alembic_recipes_fleet_run"
    (row,) = _rows(pg, record)
    assert row[0] == "_template" and row[1] in ("upgraded", "already at head")
    assert _state(pg, "_template")["versions"] == [(snap.prepared[-1],)]
    assert _spares(pg) == set()
    assert _tenant_command(snap, "spares").stdout == "2 spare schemas made\n"


NO_SPARES = """
CREATE FUNCTION no_spares() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
             WHERE object_identity LIKE '%~%') THEN
    RAISE EXCEPTION 'no spare schemas in this database';
  END IF;
END $$;
CREATE EVENT TRIGGER no_spares ON ddl_command_end EXECUTE FUNCTION no_spares();
"""


@pytest.mark.postgresql
def test_a_spare_that_fails_is_a_warning_not_the_templates_failure(
    snap: Project, pg: ServerDB
) -> None:
    """The database refuses the spares (an event trigger raising): the
    fleet's template is migrated and said so, one warning names the cause,
    the run succeeds; ``tenant spares`` then fails with that cause."""
    with pg.engine().begin() as conn:
        conn.exec_driver_sql(NO_SPARES, execution_options={"no_parameters": True})
    snap.set_option("provision_spares", "2")
    fleet = snap.alembic("-x", "tenant=all", "upgrade", "head", process=True)
    assert "_template: upgraded base ->" in fleet.output
    assert (
        "template tenant '_template' is migrated, but its snapshot or spare schemas"
        " were not made:" in fleet.output
    )
    assert "no spare schemas in this database" in fleet.output
    assert _spares(pg) == set()
    filled = _tenant_command(snap, "spares")
    assert filled.returncode != 0
    assert "no spare schemas in this database" in filled.stderr


@pytest.mark.postgresql
def test_a_template_naming_its_schema_in_text_gets_no_spares(
    snap: Project, pg: ServerDB, caplog: pytest.LogCaptureFixture
) -> None:
    """A function keeping the template's ``search_path`` (text a rename does
    not follow): no spares, a warning naming it; sign-ups copy the snapshot."""
    snap.revision(
        "a function with its search_path",
        upgrade='op.execute("CREATE FUNCTION n_kinds() RETURNS bigint LANGUAGE sql'
        ' SET search_path FROM CURRENT AS $$ SELECT count(*) FROM kinds $$")',
    )
    snap.set_option("provision_spares", "2")
    fleet = snap.alembic("-x", "tenant=all", "upgrade", "head")
    assert "the function n_kinds of template tenant '_template' holds" in fleet.output
    assert _spares(pg) == set()

    async def fill() -> int:
        engine = create_async_engine(pg.driver_url("asyncpg"))
        try:
            return await fill_spares_async(engine, config=_config(snap))
        finally:
            await engine.dispose()

    assert asyncio.run(fill()) == 0
    provision_tenant(None, "acme", config=_config(snap))
    assert _dump(pg, "acme") == _dump(pg, "_template")


@pytest.mark.postgresql
def test_a_spare_fill_cut_off_leaves_no_spare_behind(
    snap: Project, pg: ServerDB
) -> None:
    """Each spare is made in one transaction: killed while the application
    holds a lock its DDL needs, the fill leaves no schema and no row; one
    that waits past ``lock_timeout`` gives up with a warning; the next fill
    makes them all."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    snap.set_option("provision_spares", "2")
    with _plans_locked(pg):
        fill = _python(snap, FILL)
        until(lambda: waiting_for_locks(pg) > 0, "the fill to wait for the lock")
        fill.kill()
        fill.communicate(timeout=60)
        _sessions_ended(pg)
        assert _spares(pg) == set()
        table = "SELECT to_regclass('public.alembic_recipes_spare')"
        assert _rows(pg, table) == [(None,)]
        # the lock held past lock_timeout: a warning, no spare, no failure
        held = _tenant_command(snap, "spares", "-x", "lock_timeout=1s")
        assert (held.returncode, held.stdout) == (0, "0 spare schemas made\n")
        assert "a lock it needs was held longer than lock_timeout" in held.stderr
        assert _spares(pg) == set()
    made = _tenant_command(snap, "spares")
    assert made.stdout == "2 spare schemas made\n", made
    assert len(_spares(pg)) == 2


# -- killed at random moments ----------------------------------------------------
_SHAPES = """
SELECT n.nspname,
  (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid),
  (SELECT count(*) FROM pg_constraint k WHERE k.connamespace = n.oid),
  (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid),
  (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid)
FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\\_%'
  AND n.nspname NOT IN ('information_schema', 'public')
"""


def _shapes(pg: ServerDB) -> dict[str, tuple[object, ...]]:
    """Each schema's count of relations, constraints, functions and types,
    and its versions: what a whole copy of the template has."""
    shapes = {}
    for name, *counts in _rows(pg, _SHAPES):
        versions = _rows(pg, f'SELECT version_num FROM "{name}".alembic_version')
        shapes[str(name)] = (*counts, tuple(versions))
    return shapes


def _whole_or_none(pg: ServerDB) -> dict[str, tuple[object, ...]]:
    """Every schema is a whole copy of the template; every spare listed
    exists, every spare that exists is listed; the fleet record's done rows
    are the tenants that exist.  The schemas."""
    shapes = _shapes(pg)
    whole = shapes["_template"]
    assert {n: s for n, s in shapes.items() if s != whole} == {}
    with pg.engine().connect() as conn:
        if sa.inspect(conn).has_table("alembic_recipes_spare"):
            listed = {str(n) for n, _ in _rows(pg, SPARES)}
            assert listed == {n for n in shapes if "~" in n}
        if sa.inspect(conn).has_table("alembic_recipes_fleet_run"):
            record = _rows(pg, "SELECT tenant, status FROM alembic_recipes_fleet_run")
            done = {str(t) for t, status in record if status == "upgraded"}
            fleet = {n for n in shapes if n.startswith("f")}  # (sign-ups: no row)
            assert {t for t in done if t.startswith("f")} == fleet
    return shapes


def _killed(
    process: subprocess.Popen[str], pg: ServerDB, prefix: str, delay: float
) -> None:
    """SIGKILL *delay* seconds after its first schema of names starting with
    *prefix* is there; then until its session has ended on the server (its
    locks gone), as the next run would find it."""

    def made() -> int:
        return sum(name.startswith(prefix) for name in _schemas(pg))

    before = made()
    until(
        lambda: made() > before or process.poll() is not None,
        f"a new {prefix}* schema",
    )
    time.sleep(delay)
    process.kill()
    process.communicate(timeout=60)
    _sessions_ended(pg)


def _python(proj: Project, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=proj.root,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


SIGN_UPS = """
from alembic.config import Config
from alembic_recipes import provision_tenant
config = Config("alembic.ini")
for i in range(30):
    provision_tenant(None, f"s{trial}{{i:02d}}", config=config)
"""


@pytest.mark.postgresql
@pytest.mark.concurrency
def test_provisioning_killed_at_random_moments_leaves_whole_tenants_or_none(
    snap: Project, pg: ServerDB
) -> None:
    """SIGKILL at random moments (seeded) of fleets making 40 listed tenants
    from the snapshot, of fills of 12 spares, of scripts signing up 30
    tenants one after another: after each, every schema is a whole copy of
    the template (relations, constraints, functions, types, versions) or is
    not there, the run record's done rows and the spares' list say which;
    then the next runs finish the job."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    rng = random.Random(35)
    cut = []  # how many of each trial's tenants it made
    for trial in range(3):
        fleet = [f"f{trial}{i:02d}" for i in range(40)]
        snap.set_option("tenants", ", ".join(fleet))
        run = spawn(snap, "-x", "tenant=all", "upgrade", "head")
        _killed(run, pg, f"f{trial}", rng.uniform(0.0, 0.7))
        made = _whole_or_none(pg)
        cut.append(sum(name in made for name in fleet))
    assert any(0 < made < 40 for made in cut), cut  # (a kill mid-run, at least)
    snap.set_option(
        "tenants", ", ".join(f"f{t}{i:02d}" for t in range(3) for i in range(40))
    )
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    assert len([n for n in _whole_or_none(pg) if n.startswith("f")]) == 120

    snap.set_option("provision_spares", "12")
    for _ in range(3):
        _killed(_python(snap, FILL), pg, "_template~", rng.uniform(0.0, 0.5))
        _whole_or_none(pg)
    assert _tenant_command(snap, "spares").returncode == 0
    assert len(_spares(pg)) == 12

    cut = []
    for trial in range(3):
        _killed(_python(snap, SIGN_UPS.format(trial=trial)), pg, f"s{trial}",
                rng.uniform(0.0, 0.7))  # fmt: skip
        cut.append(sum(n.startswith(f"s{trial}") for n in _whole_or_none(pg)))
    assert any(0 < made < 30 for made in cut), cut
    config = _config(snap)
    names = [f"s{trial}{i:02d}" for trial in range(3) for i in range(30)]
    for name in names:
        if name not in _schemas(pg):
            provision_tenant(None, name, config=config)
    assert set(names) <= set(_whole_or_none(pg))
    assert _dump(pg, names[-1]) == _dump(pg, "_template")


# -- the database strategy ----------------------------------------------------
SQLITE_CHAIN = {
    "kinds and users": """\
op.create_table(
    "kinds",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
)
op.execute("INSERT INTO kinds (name) VALUES ('basic'), ('pro')")
op.create_table(
    "users",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind_id", sa.Integer, sa.ForeignKey("kinds.id")),
    sa.Column("name", sa.Text),
)
op.create_index("ix_users_name", "users", ["name"])""",
    "a view and a trigger": """\
op.execute("CREATE VIEW v_users AS SELECT name FROM users")
op.execute(
    "CREATE TRIGGER t_users AFTER INSERT ON users BEGIN"
    " UPDATE users SET name = lower(name) WHERE id = NEW.id; END"
)""",
}


def _sqlite_chain(proj: Project) -> list[str]:
    return _revisions(proj, SQLITE_CHAIN)


def _sqlite_state(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        master = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        return (
            [tuple(r) for r in conn.execute(sa.text(master))],
            [tuple(r) for r in conn.execute(sa.text("SELECT * FROM kinds"))],
            [tuple(r) for r in conn.execute(sa.text("SELECT * FROM alembic_version"))],
        )


def test_a_sqlite_tenant_is_a_copy_of_the_template_file(
    project: Callable[..., Project],
) -> None:
    """SQLite: the template's file copied with the backup API, renamed into
    place; the same tables, index, view, trigger, rows and version as a
    tenant made by replaying the history."""
    proj = project("multitenant", prepare=_sqlite_chain)
    proj.set_option("tenants", "")
    proj.set_option("provision", "snapshot")
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    made = proj.alembic("-x", "tenant=acme", "-x", "new=true", "upgrade", "head")
    assert "tenant 'acme': copied from the template '_template'" in made.output
    proj.alembic(
        "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
        "upgrade", "head",
    )  # fmt: skip
    tenants = proj.root / "tenants"
    assert _sqlite_state(tenants / "acme.db") == _sqlite_state(tenants / "replayed.db")
    assert sorted(p.name for p in tenants.iterdir() if "copying" in p.name) == []
    again = proj.alembic(
        "-x", "tenant=acme", "-x", "new=true", "upgrade", "head", ok=False
    )
    assert "tenant 'acme': its database exists already" in again.output


@pytest.mark.postgresql
def test_a_postgresql_tenant_database_is_created_from_the_template(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """PostgreSQL, a database per tenant: ``CREATE DATABASE ... TEMPLATE``;
    ``pg_dump -s`` equals a replayed tenant's.  While a session is connected
    to the template, one error says why, and nothing is made."""
    base = pg.url.database
    proj = project(
        "multitenant", url=pg.driver_url("psycopg") + "_{tenant}", prepare=_chain
    )
    proj.set_option("tenants", "")
    proj.set_option("provision", "snapshot")
    names = ["_template", "acme", "replayed", "busy"]
    try:
        proj.alembic("-x", "tenant=all", "upgrade", "head")
        proj.alembic("-x", "tenant=acme", "-x", "new=true", "upgrade", "head")
        proj.alembic(
            "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
            "upgrade", "head",
        )  # fmt: skip
        dump = {n: schema_dump(pg.url, "public", f"{base}_{n}", privileges=True)
                for n in ("acme", "replayed")}  # fmt: skip
        assert dump["acme"] == dump["replayed"]
        assert len(dump["acme"]) > 60
        sitting = sa.create_engine(pg.url.set(database=f"{base}__template",
                                              drivername="postgresql+psycopg"),
                                   poolclass=sa.pool.NullPool)  # fmt: skip
        with sitting.connect():
            busy = proj.alembic(
                "-x", "tenant=busy", "-x", "new=true", "upgrade", "head", ok=False
            )
        assert "the template database" in busy.output
        assert "has other sessions" in busy.output
        with pg.engine().connect() as conn:
            found = conn.scalar(
                sa.text("SELECT count(*) FROM pg_database WHERE datname = :d"),
                {"d": f"{base}_busy"},
            )
        assert found == 0
    finally:
        pg.drop_tenant_databases(names)


MYSQL_CHAIN = {
    "kinds and users": """\
op.create_table(
    "kinds",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)
op.execute("INSERT INTO kinds (name) VALUES ('basic'), ('pro')")
op.create_table(
    "users",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind_id", sa.Integer, sa.ForeignKey("kinds.id")),
    sa.Column("name", sa.String(50), comment="their name"),
)
op.create_index("ix_users_name", "users", ["name"])""",
    "a view and a trigger": """\
op.execute("CREATE VIEW v_users AS SELECT u.name, k.name AS kind FROM users u"
           " JOIN kinds k ON k.id = u.kind_id")
op.execute(
    "CREATE TRIGGER t_users BEFORE INSERT ON users FOR EACH ROW"
    " SET NEW.name = lower(NEW.name)"
)""",
}


def _mysql_chain(proj: Project) -> list[str]:
    return _revisions(proj, MYSQL_CHAIN)


def _mysql_state(db: ServerDB, database: str) -> list[object]:
    """Every table's, view's and trigger's ``SHOW CREATE`` (the database's
    name written ``db``), the seed rows and the version."""
    with db.engine().connect() as conn:
        rows = conn.execute(
            sa.text("SELECT table_name, table_type FROM information_schema.tables"
                    " WHERE table_schema = :s ORDER BY table_name"),
            {"s": database},
        ).all()  # fmt: skip
        state: list[object] = []
        for name, kind in rows:
            what = "VIEW" if kind == "VIEW" else "TABLE"
            ddl = conn.exec_driver_sql(f"SHOW CREATE {what} `{database}`.`{name}`")
            state.append(ddl.one()[1].replace(f"`{database}`", "`db`"))
        for (trigger,) in conn.execute(
            sa.text("SELECT trigger_name FROM information_schema.triggers"
                    " WHERE trigger_schema = :s"),
            {"s": database},
        ):  # fmt: skip
            shown = conn.exec_driver_sql(
                f"SHOW CREATE TRIGGER `{database}`.`{trigger}`"
            )
            state.append(shown.one()[2])
        for table in ("kinds", "alembic_version"):
            q = f"SELECT * FROM `{database}`.`{table}`"
            state.append([tuple(r) for r in conn.exec_driver_sql(q)])
        return state


@pytest.mark.mysql
def test_a_mariadb_tenant_is_made_from_the_template_ddl(
    project: Callable[..., Project], mysql: ServerDB
) -> None:
    """MariaDB/MySQL: the template's ``SHOW CREATE`` DDL and its seed rows in
    a new database; the same as a tenant made by replaying the history."""
    base = mysql.url.database
    proj = project("multitenant", url=mysql.driver_url("pymysql") + "_{tenant}",
                   prepare=_mysql_chain)  # fmt: skip
    proj.set_option("tenants", "")
    proj.set_option("provision", "snapshot")
    proj.set_option("provision_seed", "kinds")
    try:
        proj.alembic("-x", "tenant=all", "upgrade", "head")
        made = proj.alembic("-x", "tenant=acme", "-x", "new=true", "upgrade", "head")
        assert "tenant 'acme': copied from the template '_template'" in made.output
        proj.alembic(
            "-x", "tenant=replayed", "-x", "provision=replay", "-x", "create=true",
            "upgrade", "head",
        )  # fmt: skip
        copied = _mysql_state(mysql, f"{base}_acme")
        assert copied == _mysql_state(mysql, f"{base}_replayed")
        assert len(copied) == 7
    finally:
        mysql.drop_tenant_databases(["_template", "acme", "replayed"])


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("-x", "provision=copy", "invalid value 'copy' for -x provision:"
         " expected one of replay, snapshot"),
        ("provision_template", "Bad Name", "invalid tenant name 'Bad Name' from"
         " provision_template"),
        ("provision_seed", "kinds; drop table x",
         "invalid value 'kinds;' for provision_seed: expected table names"),
        ("provision_spares", "3", "invalid provision_spares 3: spare schemas are"
         " made for tenant_strategy = schema"),
        ("provision_spares", "many", "invalid value 'many' for spares /"
         " provision_spares: expected a whole number of spare schemas"),
    ],
)  # fmt: skip
def test_bad_provisioning_options_are_one_line_before_any_sql(
    project: Callable[..., Project], option: str, value: str, said: str
) -> None:
    proj = project("multitenant", prepare=_sqlite_chain)
    args = ["-x", "tenant=acme", "-x", "create=true", "upgrade", "head"]
    if option == "-x":
        args = ["-x", value, *args]
    else:
        proj.set_option(option, value)
        proj.set_option("provision", "snapshot")
    failed = proj.alembic(*args, ok=False)
    assert failed.code == 255
    assert f"FAILED: {said}" in failed.output, failed.output
    assert not (proj.root / "tenants").exists()


# -- dropping and renaming ------------------------------------------------------
def _tenant_command(proj: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m alembic_recipes tenant ...`` in the project, as a user runs it."""
    return recipes("tenant", *args, cwd=proj.root)


@pytest.mark.postgresql
def test_schema_tenants_are_provisioned_renamed_and_dropped_from_the_shell(
    snap: Project, pg: ServerDB
) -> None:
    """``tenant provision``, ``rename`` and ``drop``: each refuses without the
    name confirmed (nothing changed), renaming keeps the history and moves
    the tenant's rows of the run record, dropping removes both."""
    snap.alembic("-x", "tenant=all", "upgrade", "head")
    assert _tenant_command(snap, "provision", "acme").returncode == 0
    snap.set_option("tenants", "acme")
    snap.alembic("-x", "tenant=all", "-x", "provision=replay", "upgrade", "head")
    record = "SELECT tenant FROM public.alembic_recipes_fleet_run ORDER BY tenant"
    assert ("acme",) in _rows(pg, record)
    head = _state(pg, "acme")["versions"]

    refused = _tenant_command(snap, "rename", "acme", "globex", "--confirm", "acm")
    assert refused.returncode == 255
    assert refused.stderr.startswith(
        "FAILED: rename_tenant: 'acme' not confirmed (got confirm='acm')"
    ), refused.stderr
    assert "acme" in _schemas(pg)
    bad = _tenant_command(snap, "drop", "Acme", "--confirm", "Acme")
    assert bad.returncode == 255
    assert "invalid tenant name 'Acme'" in bad.stderr

    renamed = _tenant_command(snap, "rename", "acme", "globex", "--confirm", "acme")
    assert renamed.returncode == 0, renamed.stderr
    assert {"globex"} <= _schemas(pg) and "acme" not in _schemas(pg)
    assert _state(pg, "globex")["versions"] == head
    assert ("globex",) in _rows(pg, record) and ("acme",) not in _rows(pg, record)
    taken = _tenant_command(
        snap, "rename", "globex", "_template", "--confirm", "globex"
    )
    assert "tenant '_template': its schema exists already" in taken.stderr

    dropped = _tenant_command(snap, "drop", "globex", "--confirm", "globex")
    assert dropped.returncode == 0, dropped.stderr
    assert "globex" not in _schemas(pg)
    assert ("globex",) not in _rows(pg, record)
    again = _tenant_command(snap, "drop", "globex", "--confirm", "globex")
    assert again.stderr.startswith("FAILED: drop_tenant: no tenant 'globex'")


def test_sqlite_tenants_are_renamed_and_dropped(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", prepare=_sqlite_chain)
    monkeypatch.chdir(proj.root)
    proj.set_option("tenants", "acme")
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    tenants = proj.root / "tenants"
    before = _sqlite_state(tenants / "acme.db")
    config = _config(proj)
    rename_tenant(None, "acme", "globex", config=config, confirm="acme")
    assert not (tenants / "acme.db").exists()
    assert _sqlite_state(tenants / "globex.db") == before
    with pytest.raises(CommandError, match="not confirmed"):
        drop_tenant(None, "globex", config=config, confirm=None)
    drop_tenant(None, "globex", config=config, confirm="globex")
    assert not (tenants / "globex.db").exists()
