"""Replaceable objects (views, materialized views, functions, procedures,
triggers) through the real ``alembic`` CLI: hand-written revisions on every
database, each replace downgraded, ``replaces=`` checked at load time,
autogenerate, and the multitenant schema strategy."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.projects import Project, assert_ruff_clean, use_models
from support.servers import ServerDB, tables, versions

ORDERS = (
    'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True),'
    ' sa.Column("total", sa.Integer))\n'
    'op.create_table("audit", sa.Column("order_id", sa.Integer))'
)
DROP_ORDERS = 'op.drop_table("audit")\nop.drop_table("orders")'

# per database: (imports, declarations of revision 1, of revision 2 -- each
# replacing the same attribute; {rev} is revision 1 -- and the kinds declared)
SQLITE = (
    "Trigger, View",
    """
big_orders = View("big_orders", "SELECT id, total FROM orders WHERE total > 100")
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT",
    definition="BEGIN INSERT INTO audit (order_id) VALUES (NEW.id); END",
)
""",
    """
big_orders = View(
    "big_orders", "SELECT id, total FROM orders WHERE total > 500",
    replaces="{rev}.big_orders",
)
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT",
    definition="BEGIN INSERT INTO audit (order_id) VALUES (NEW.id * 10); END",
    replaces="{rev}.audit",
)
""",
    ["view", "trigger"],
)
POSTGRESQL = (
    "Function, MaterializedView, Procedure, Trigger, View",
    """
big_orders = View("big_orders", "SELECT id, total FROM orders WHERE total > 100")
order_count = MaterializedView("order_count", "SELECT count(*) AS n FROM orders")
audit_row = Function(
    "audit_row()",
    "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO audit (order_id) VALUES (NEW.id); RETURN NEW; END $$",
)
add_order = Procedure(
    "add_order(t integer)",
    "LANGUAGE sql AS $$ INSERT INTO orders (total) VALUES (t) $$",
)
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT",
    definition="FOR EACH ROW EXECUTE FUNCTION audit_row()",
)
""",
    """
big_orders = View(
    "big_orders", "SELECT id, total FROM orders WHERE total > 500",
    replaces="{rev}.big_orders",
)
order_count = MaterializedView(
    "order_count", "SELECT count(*) * 10 AS n FROM orders",
    replaces="{rev}.order_count",
)
audit_row = Function(
    "audit_row()",
    "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO audit (order_id) VALUES (NEW.id * 10); RETURN NEW; END $$",
    replaces="{rev}.audit_row",
)
add_order = Procedure(
    "add_order(t integer)",
    "LANGUAGE sql AS $$ INSERT INTO orders (total) VALUES (t + 1) $$",
    replaces="{rev}.add_order",
)
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT OR UPDATE",
    definition="FOR EACH ROW EXECUTE FUNCTION audit_row()",
    replaces="{rev}.audit",
)
""",
    ["function", "procedure", "view", "materialized_view", "trigger"],
)
MYSQL = (
    "Function, Procedure, Trigger, View",
    """
big_orders = View("big_orders", "SELECT id, total FROM orders WHERE total > 100")
doubled = Function("doubled(a INT)", "RETURNS INT DETERMINISTIC RETURN a * 2")
add_order = Procedure(
    "add_order(t INT)", "BEGIN INSERT INTO orders (total) VALUES (t); END"
)
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT",
    definition="FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id)",
)
""",
    """
big_orders = View(
    "big_orders", "SELECT id, total FROM orders WHERE total > 500",
    replaces="{rev}.big_orders",
)
doubled = Function(
    "doubled(a INT)", "RETURNS INT DETERMINISTIC RETURN a * 3",
    replaces="{rev}.doubled",
)
add_order = Procedure(
    "add_order(t INT)", "BEGIN INSERT INTO orders (total) VALUES (t + 1); END",
    replaces="{rev}.add_order",
)
audit = Trigger(
    "orders_audit", table="orders", when="AFTER INSERT",
    definition="FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id * 10)",
    replaces="{rev}.audit",
)
""",
    ["function", "procedure", "view", "trigger"],
)
# object kinds in the order they are created (dropped in reverse)
ORDER = ["function", "procedure", "view", "materialized_view", "trigger"]


def declare(proj: Project, rev: str, imports: str, declarations: str) -> None:
    """Write module-level declarations into revision *rev*, as a user would."""
    path = proj.revision_file(rev)
    text = path.read_text()
    anchor = re.search(r"^depends_on: .*\n", text, re.M)
    assert anchor
    block = f"\n\n{declarations.strip()}\n"
    text = text[: anchor.end()] + block + text[anchor.end() :]
    text = text.replace(
        "from alembic import op",
        f"from alembic import op\nfrom alembic_recipes.replaceable import {imports}",
        1,
    )
    path.write_text(text)


def hand_written(proj: Project, spec: tuple[str, str, str, list[str]]) -> list[str]:
    """Two revisions: tables + every object, then a replace of every object."""
    imports, first, second, kinds = spec
    names = {kind: _attribute(first, kind) for kind in kinds}
    create = "\n".join(f"op.create_{k}({names[k]})" for k in ORDER if k in kinds)
    drop = "\n".join(f"op.drop_{k}({names[k]})" for k in reversed(ORDER) if k in kinds)
    rev1 = proj.revision(
        "objects",
        schema_upgrades=f"{ORDERS}\n{create}",
        schema_downgrades=f"{drop}\n{DROP_ORDERS}",
    )
    declare(proj, rev1, imports, first)
    replace = [f"op.replace_{k}({names[k]})" for k in ORDER if k in kinds]
    back = [
        f"op.replace_{k}({names[k]}, reverse=True)"
        for k in reversed(ORDER)
        if k in kinds
    ]
    rev2 = proj.revision(
        "replace them",
        schema_upgrades="\n".join(replace),
        schema_downgrades="\n".join(back),
    )
    declare(proj, rev2, imports, second.replace("{rev}", rev1))
    return [rev1, rev2]


def _attribute(declarations: str, kind: str) -> str:
    cls = "".join(part.title() for part in kind.split("_"))
    found = re.search(rf"^(\w+) = {cls}\(", declarations, re.M)
    assert found, kind
    return found.group(1)


def _state(url: str, kinds: list[str]) -> dict[str, object]:
    """What the objects do: rows through the view, the trigger's audit rows,
    the function's and procedure's results, the materialized view's rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    queries = {
        "view": "SELECT id FROM big_orders",
        "trigger": "SELECT order_id FROM audit",
        "function": "SELECT doubled(5)",
        "materialized_view": "SELECT n FROM order_count",
    }
    with engine.begin() as conn:
        if "trigger" in kinds:
            conn.execute(sa.text("DELETE FROM audit"))
        conn.execute(sa.text("DELETE FROM orders"))
        conn.execute(sa.text("INSERT INTO orders (id, total) VALUES (7, 200)"))
        if "materialized_view" in kinds:
            conn.execute(sa.text("REFRESH MATERIALIZED VIEW order_count"))
        if conn.dialect.name == "postgresql":
            kinds = [kind for kind in kinds if kind != "function"]  # a trigger's
        state: dict[str, object] = {
            kind: conn.scalars(sa.text(queries[kind])).all()
            for kind in kinds
            if kind in queries
        }
        if "procedure" in kinds:
            conn.execute(sa.text("CALL add_order(5)"))
            query = "SELECT total FROM orders WHERE id <> 7"
            state["procedure"] = conn.scalars(sa.text(query)).all()
        conn.rollback()
    return state


def _objects_left(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type IN ('view', 'trigger')"
        elif conn.dialect.name == "postgresql":
            query = (
                "SELECT viewname FROM pg_views WHERE schemaname = 'public' UNION"
                " SELECT matviewname FROM pg_matviews UNION SELECT proname FROM"
                " pg_proc WHERE pronamespace = 'public'::regnamespace UNION"
                " SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            )
        else:
            query = (
                "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA ="
                " DATABASE() UNION SELECT ROUTINE_NAME FROM information_schema.ROUTINES"
                " WHERE ROUTINE_SCHEMA = DATABASE() UNION SELECT TRIGGER_NAME FROM"
                " information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
            )
        return set(conn.scalars(sa.text(query)))


ALL = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    server: ServerDB = request.getfixturevalue(
        "pg" if request.param == "postgresql" else "mysql"
    )
    return server.driver_url("psycopg" if request.param == "postgresql" else "pymysql")


SPECS = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL}


@pytest.mark.parametrize("database", ALL, indirect=True)
def test_create_replace_and_downgrade_every_kind(
    project: Callable[..., Project], database: str
) -> None:
    backend = sa.make_url(database).get_backend_name()
    spec = SPECS[backend]
    kinds = spec[3]
    proj = project("data-flag", url=database)
    rev1, _rev2 = hand_written(proj, spec)
    proj.alembic("upgrade", rev1)
    first = _state(database, kinds)
    proj.alembic("upgrade", "head")
    second = _state(database, kinds)
    assert (first["view"], second["view"]) == ([7], [])
    assert (first["trigger"], second["trigger"]) == ([7], [70])
    if backend == "mysql":
        assert (first["function"], second["function"]) == ([10], [15])
    if "procedure" in kinds:
        assert (first["procedure"], second["procedure"]) == ([5], [6])
    if "materialized_view" in kinds:
        assert (first["materialized_view"], second["materialized_view"]) == ([1], [10])
    # every replace downgraded: the first definitions are back
    proj.alembic("downgrade", "-1")
    assert versions(database) == [rev1]
    assert _state(database, kinds) == first
    proj.alembic("downgrade", "base")
    assert _objects_left(database) == set()
    assert tables(database) == {"alembic_version"}


@pytest.mark.parametrize(
    "replaces, message",
    [
        ("{rev}.big_order", "has no 'big_order' (it declares audit, big_orders)"),
        ("{rev}.audit", "{rev}.audit is a trigger, not a view"),
        ("abcdef.big_orders", "Can't locate revision identified by 'abcdef'"),
        ("big_orders", "expected '<revision>.<attribute>'"),
    ],
)  # fmt: skip
def test_a_wrong_replaces_fails_at_upgrade_time(
    project: Callable[..., Project], replaces: str, message: str
) -> None:
    proj = project("data-flag", prepare=_sqlite_objects)
    rev1, rev2 = proj.prepared
    path = proj.revision_file(rev2)
    wrong = f'replaces="{replaces.format(rev=rev1)}"'
    path.write_text(path.read_text().replace(f'replaces="{rev1}.big_orders"', wrong))
    result = proj.alembic("upgrade", "head", ok=False)
    assert result.code == 255
    failed = [line for line in result.output.splitlines() if "FAILED" in line]
    assert len(failed) == 1
    assert failed[0].startswith(f"FAILED: revision {rev2}: view 'big_orders' replaces=")
    assert message.format(rev=rev1) in failed[0]
    assert "Traceback" not in result.output
    db = f"sqlite:///{proj.root}/app.db"
    assert "orders" not in tables(db)  # nothing ran, not even revision 1


def _sqlite_objects(proj: Project) -> list[str]:
    return hand_written(proj, SQLITE)


def test_an_unsupported_kind_is_one_line(project: Callable[..., Project]) -> None:
    proj = project("data-flag")
    code = f"{ORDERS}\nop.create_materialized_view(counts)"
    rev = proj.revision("matview", schema_upgrades=code)
    counts = 'counts = MaterializedView("counts", "SELECT 1")'
    declare(proj, rev, "MaterializedView", counts)
    result = proj.alembic("upgrade", "head", ok=False)
    assert [line for line in result.output.splitlines() if "FAILED" in line] == [
        "FAILED: materialized view 'counts': sqlite has no materialized views"
        " (PostgreSQL do)"
    ]
    assert "orders" not in tables(f"sqlite:///{proj.root}/app.db")  # rolled back


MODELS = """import sqlalchemy as sa
from alembic_recipes.replaceable import Function, View, register_objects

metadata = sa.MetaData()
sa.Table(
    "orders", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("total", sa.Integer),
)
big_orders = View("big_orders", "SELECT id, total FROM orders WHERE total > {limit}")
objects = [big_orders]
if {functions}:
    objects.append(Function(
        "doubled(a integer)",
        "RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT a * {factor} $$",
    ))
register_objects(metadata, *objects)
"""


def _models(proj: Project, limit: int, functions: bool, factor: int = 2) -> None:
    (proj.root / "models.py").write_text(
        MODELS.format(limit=limit, functions=functions, factor=factor)
    )


def _autogenerate(proj: Project, message: str, *args: str) -> tuple[str, str]:
    out = proj.alembic(*args, "revision", "--autogenerate", "-m", message).output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    assert_ruff_clean(path)
    text = path.read_text()
    return re.findall(r'^revision: str = "(\w+)"', text, re.M)[0], text


def test_autogenerate_postgresql(project: Callable[..., Project], pg: ServerDB) -> None:
    """create, then replace (pointing at the revision holding the previous
    definition), then drop; every step upgraded and downgraded."""
    url = pg.driver_url("psycopg")
    proj = project("async-shared", url=pg.driver_url("asyncpg"))
    use_models(proj)
    _models(proj, limit=100, functions=True)
    rev1, text = _autogenerate(proj, "objects")
    assert "op.create_view(big_orders)" in text
    assert "op.create_function(doubled)" in text
    assert text.index('op.create_table(\n        "orders"') < text.index(
        "op.create_view"
    )
    assert text.index("op.drop_view(big_orders)") < text.index(
        'op.drop_table("orders")'
    )
    proj.alembic("upgrade", "head")
    assert _objects_left(url) == {"big_orders", "doubled"}
    assert "No new upgrade operations" in proj.alembic("check").output
    _models(proj, limit=500, functions=True, factor=3)
    rev2, text = _autogenerate(proj, "replace them")
    assert f'replaces="{rev1}.big_orders"' in text
    assert f'replaces="{rev1}.doubled"' in text
    assert "op.replace_view(big_orders, reverse=True)" in text
    proj.alembic("upgrade", "head")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def definitions() -> tuple[str, int]:
        with engine.connect() as conn:
            view = conn.scalar(sa.text("SELECT pg_get_viewdef('big_orders')"))
            return " ".join(view.split()), conn.scalar(sa.text("SELECT doubled(5)"))

    assert definitions() == (
        "SELECT orders.id, orders.total FROM orders WHERE (orders.total > 500);",
        15,
    )
    assert "No new upgrade operations" in proj.alembic("check").output
    proj.alembic("downgrade", "-1")
    assert definitions() == (
        "SELECT orders.id, orders.total FROM orders WHERE (orders.total > 100);",
        10,
    )
    proj.alembic("upgrade", "head")
    _models(proj, limit=500, functions=False)
    _rev3, text = _autogenerate(proj, "drop the function")
    assert "op.drop_function(doubled)" in text
    assert "op.create_function(doubled)" in text
    assert "SELECT a * 3" in text  # the definition the downgrade restores
    proj.alembic("upgrade", "head")
    assert _objects_left(url) == {"big_orders"}
    proj.alembic("downgrade", rev2)
    assert definitions()[1] == 15
    proj.alembic("downgrade", "base")
    assert _objects_left(url) == set()


@pytest.mark.parametrize("database", [ALL[0], ALL[2]], indirect=True)
def test_autogenerate_sqlite_and_mysql(
    project: Callable[..., Project], database: str
) -> None:
    """SQLite: changed views are found; MySQL/MariaDB: created and dropped ones."""
    backend = sa.make_url(database).get_backend_name()
    proj = project("data-flag", url=database)
    use_models(proj)
    _models(proj, limit=100, functions=False)
    rev1, text = _autogenerate(proj, "objects")
    assert "op.create_view(big_orders)" in text
    proj.alembic("upgrade", "head")
    assert _objects_left(database) == {"big_orders"}
    _models(proj, limit=500, functions=False)
    if backend == "sqlite":
        _rev2, text = _autogenerate(proj, "replace")
        assert f'replaces="{rev1}.big_orders"' in text
        proj.alembic("upgrade", "head")
        proj.alembic("downgrade", "-1")
        assert _state(database, ["view"])["view"] == [7]
    else:  # not detected: MariaDB rewrites the view's text
        assert "No new upgrade operations" in proj.alembic("check").output


def test_multitenant_schema_strategy(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema-less objects land in each tenant's schema; autogenerate compares
    them with one tenant's."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "acme, globex")
    monkeypatch.chdir(proj.root)
    use_models(proj)
    _models(proj, limit=100, functions=True)
    rev1, _ = _autogenerate(proj, "objects", "-x", "tenant=acme")
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    engine = sa.create_engine(pg.driver_url("psycopg"), poolclass=sa.pool.NullPool)

    def where() -> set[tuple[str, str]]:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    sa.text(
                        "SELECT schemaname, viewname FROM pg_views WHERE viewname ="
                        " 'big_orders' UNION SELECT pronamespace::regnamespace::text,"
                        " proname FROM pg_proc WHERE proname = 'doubled'"
                    )
                ).all()
            )

    assert where() == {
        (schema, name)
        for schema in ("acme", "globex")
        for name in ("big_orders", "doubled")
    }
    check = proj.alembic("-x", "tenant=globex", "check").output
    assert "No new upgrade operations" in check
    _models(proj, limit=500, functions=True, factor=3)
    _, text = _autogenerate(proj, "replace", "-x", "tenant=acme")
    assert f'replaces="{rev1}.big_orders"' in text
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT globex.doubled(5)")) == 15
    proj.alembic("-x", "tenant=all", "downgrade", "-1")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT acme.doubled(5)")) == 10
        assert conn.scalar(sa.text("SELECT globex.doubled(5)")) == 10
