"""Autogenerate for replaceable objects: what the metadata declares, compared
with what the database has.

Register the objects on the metadata env.py compares
(``register_objects(Base.metadata, customer_view, total)``).  ``alembic
revision --autogenerate`` then writes:

* ``op.create_<kind>(x)`` for an object the database lacks;
* ``op.replace_<kind>(x)`` for one whose definition changed, its declaration
  pointing (``replaces=``) at the latest revision declaring the object;
* ``op.drop_<kind>(x)`` for one a revision created that is no longer
  registered (objects no revision declared are never dropped).

The declarations go at the top of the new revision (the ``replaceable``
template variable of alembic-recipes' ``script.py.mako``).  Changed
definitions are found on PostgreSQL (each declared object is created under a
scratch name inside a SAVEPOINT, and the server's own rendering of both is
compared) and on SQLite (which keeps the text it was given); on MySQL/MariaDB,
which rewrite the text, only created and dropped objects are found.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from alembic.autogenerate import comparators, renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from ..autogenerate.recipes import register_directives_step
from ..logs import logger_for
from .objects import ReplaceableObject, Trigger
from .operations import CREATE, DROP, REPLACE, DropObjectOp, ObjectOp
from .references import declarations

__all__ = ["register_objects", "registered_objects", "render_declaration"]

log = logger_for(__name__)

INFO_KEY = "alembic_recipes.replaceable"
TEMPLATE_VARIABLE = "replaceable"
"""The script.py.mako variable holding the new revision's declarations."""
_SCRATCH = "_ar_compare_"


def register_objects(metadata: MetaData, *objects: ReplaceableObject) -> None:
    """Have autogenerate compare *objects* along with *metadata*'s tables."""
    registered = metadata.info.setdefault(INFO_KEY, [])
    seen = {obj.identity for obj in registered}
    for obj in objects:
        if not isinstance(obj, ReplaceableObject):
            raise TypeError(f"expected a replaceable object, got {obj!r}")
        if obj.identity in seen:
            raise ValueError(f"{obj.kind} {obj.name!r} is registered twice")
        seen.add(obj.identity)
        registered.append(obj)


def registered_objects(
    metadata: MetaData | Iterable[MetaData] | None,
) -> list[ReplaceableObject]:
    """The objects registered on *metadata* (one or several)."""
    if metadata is None:
        return []
    metadatas = [metadata] if isinstance(metadata, MetaData) else list(metadata)
    return [obj for md in metadatas for obj in md.info.get(INFO_KEY, [])]


def _history(
    script: ScriptDirectory | None,
) -> dict[tuple[str, str | None, str], tuple[str, str, ReplaceableObject]]:
    """identity -> (revision, attribute, declaration): the latest declaring one."""
    latest: dict[tuple[str, str | None, str], tuple[str, str, ReplaceableObject]] = {}
    if script is None:
        return latest
    for revision in script.walk_revisions():  # heads first
        for attribute, obj in declarations(revision.module):
            latest.setdefault(obj.identity, (revision.revision, attribute, obj))
    return latest


# --- what the database has -----------------------------------------------------

_PG_SCHEMA = "n.nspname = coalesce(:schema, current_schema())"
_PG_QUERIES = {
    "view": "SELECT pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON"
    f" n.oid = c.relnamespace WHERE {_PG_SCHEMA} AND c.relname = :name"
    " AND c.relkind = 'v'",
    "materialized_view": "SELECT pg_get_viewdef(c.oid) FROM pg_class c JOIN"
    f" pg_namespace n ON n.oid = c.relnamespace WHERE {_PG_SCHEMA} AND c.relname ="
    " :name AND c.relkind = 'm'",
    "function": "SELECT pg_get_function_identity_arguments(p.oid) || ':' ||"
    " pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid ="
    f" p.pronamespace WHERE {_PG_SCHEMA} AND p.proname = :name AND p.prokind = 'f'",
    "procedure": "SELECT pg_get_function_identity_arguments(p.oid) || ':' ||"
    " pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid ="
    f" p.pronamespace WHERE {_PG_SCHEMA} AND p.proname = :name AND p.prokind = 'p'",
    "trigger": "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON"
    " c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE"
    f" {_PG_SCHEMA} AND t.tgname = :name AND c.relname = :table AND NOT t.tgisinternal",
}
_MYSQL_SCHEMA = "= coalesce(:schema, DATABASE())"
_MYSQL_QUERIES = {
    "view": "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA"
    f" {_MYSQL_SCHEMA} AND TABLE_NAME = :name",
    "function": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE"
    f" ROUTINE_SCHEMA {_MYSQL_SCHEMA} AND ROUTINE_NAME = :name AND ROUTINE_TYPE ="
    " 'FUNCTION'",
    "procedure": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE"
    f" ROUTINE_SCHEMA {_MYSQL_SCHEMA} AND ROUTINE_NAME = :name AND ROUTINE_TYPE ="
    " 'PROCEDURE'",
    "trigger": "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE"
    f" TRIGGER_SCHEMA {_MYSQL_SCHEMA} AND TRIGGER_NAME = :name AND"
    " EVENT_OBJECT_TABLE = :table",
}


def _normal(sql: str) -> str:
    return " ".join(sql.split())


def _rendered(conn: Connection, obj: ReplaceableObject, name: str) -> list[str]:
    """How the database renders *obj*'s definitions (PostgreSQL: several for
    overloaded functions), or ``[]`` when it has no such object."""
    family = conn.dialect.name
    params = {"schema": obj.schema, "name": name, "table": getattr(obj, "table", None)}
    if family == "postgresql":
        found = conn.scalars(text(_PG_QUERIES[obj.kind]), params).all()
        # the name, in the header line, is not part of the definition
        return [_without_name(obj, definition) for definition in found]
    if family == "sqlite":
        kind = "trigger" if isinstance(obj, Trigger) else "view"
        found = conn.scalars(
            text("SELECT sql FROM sqlite_master WHERE type = :kind AND name = :name"),
            {"kind": kind, "name": name},
        ).all()
        return [_normal(d) for d in found]
    query = _MYSQL_QUERIES.get(obj.kind)
    return ["exists"] * len(conn.scalars(text(query), params).all()) if query else []


def _without_name(obj: ReplaceableObject, definition: str) -> str:
    """PostgreSQL's rendering of a function or trigger, minus its name."""
    if obj.kind in ("function", "procedure"):
        # "<identity args>:CREATE OR REPLACE FUNCTION <name>(...)\n<rest>"
        return re.sub(r"^(.*?):CREATE OR REPLACE \w+ [^\n]*\n", r"\1:", definition)
    if obj.kind == "trigger":
        return re.sub(
            r"^CREATE (CONSTRAINT )?TRIGGER \S+", "CREATE TRIGGER", definition
        )
    return definition


def _changed(conn: Connection, obj: ReplaceableObject, current: list[str]) -> bool:
    """Does the database's definition differ from *obj*'s?"""
    dialect = conn.dialect
    if dialect.name == "sqlite":
        return _normal(obj.create_sql(dialect)) not in current
    if dialect.name != "postgresql":
        return False  # MySQL/MariaDB rewrite the text: changes are not detected
    scratch = f"{_SCRATCH}{obj.bare_name}"[:63]
    prep = dialect.identifier_preparer
    qualified = prep.quote(scratch)
    if obj.schema and not isinstance(obj, Trigger):
        qualified = f"{prep.quote_schema(obj.schema)}.{qualified}"
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(obj.create_sql(dialect, name=qualified))
        ours = _rendered(conn, obj, scratch)
    finally:
        savepoint.rollback()
    return not set(ours) & set(current)


# --- the comparison ------------------------------------------------------------


def _attribute(obj: ReplaceableObject, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", obj.bare_name.lower())
    if not base.isidentifier():
        base = f"{obj.kind}_{base}"
    name = base if base not in taken else f"{base}_{obj.kind}"
    taken.add(name)
    return name


@comparators.dispatch_for("schema")
def compare_objects(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """Alembic's comparator hook: add create / replace / drop operations."""
    declared = registered_objects(autogen_context.metadata)
    conn = autogen_context.connection
    script = getattr(autogen_context.migration_context, "script", None)
    history = _history(script) if script is not None else {}
    if conn is None or not (declared or history):
        return
    taken: set[str] = set()
    found: list[ObjectOp] = []
    for obj in declared:
        op = _create_or_replace(conn, obj, history, taken)
        if op is not None:
            found.append(op)
    wanted = {obj.identity for obj in declared}
    for identity, (_, _, old) in history.items():
        if identity not in wanted and _rendered(conn, old, old.bare_name):
            gone = dataclasses.replace(old, replaces=None)
            found.append(DROP[old.kind](gone, attribute=_attribute(old, taken)))
    if not found:
        return
    upgrade_ops.ops.extend(found)
    _add_declarations(autogen_context, found)


def _create_or_replace(
    conn: Connection,
    obj: ReplaceableObject,
    history: dict[tuple[str, str | None, str], tuple[str, str, ReplaceableObject]],
    taken: set[str],
) -> ObjectOp | None:
    """The operation declared *obj* needs: created when the database has
    none, replaced (naming the revision declaring the one there) when it
    differs; None when it is the same, or no revision declares the old one."""
    current = _rendered(conn, obj, obj.bare_name)
    if not current:
        return CREATE[obj.kind](obj, attribute=_attribute(obj, taken))
    if not _changed(conn, obj, current):
        return None
    previous = history.get(obj.identity)
    if previous is None:
        log.warning(
            "%s %s differs from the database's, but no revision declares"
            " it: write its op.replace_%s() by hand",
            obj.kind.replace("_", " "), obj.name, obj.kind,
        )  # fmt: skip
        return None
    revision, attribute, _ = previous
    new = dataclasses.replace(obj, replaces=f"{revision}.{attribute}")
    return REPLACE[obj.kind](new, attribute=_attribute(obj, taken))


def _add_declarations(autogen_context: AutogenContext, found: list[ObjectOp]) -> None:
    template_args = autogen_context.opts.get("template_args")
    if template_args is None:  # e.g. `alembic check`: nothing is written
        return
    existing = template_args.get(TEMPLATE_VARIABLE) or ""
    blocks = [render_declaration(op.attribute, op.target) for op in found]
    template_args[TEMPLATE_VARIABLE] = "\n\n".join(
        block for block in (existing, *blocks) if block
    )


# --- rendering -----------------------------------------------------------------


def _string(value: str) -> str:
    if (
        "\n" in value
        and '"""' not in value
        and "\\" not in value
        and not value.endswith('"')
    ):
        return f'"""{value}"""'
    return repr(value)


def render_declaration(attribute: str, obj: ReplaceableObject) -> str:
    """``attribute = View("name", "SELECT ...", ...)`` as Python source."""
    args = [_string(obj.name), _string(obj.definition.strip())]
    defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if field.name not in ("name", "definition") and value != defaults[field.name]:
            shown = _string(value) if isinstance(value, str) else repr(value)
            args.append(f"{field.name}={shown}")
    body = "".join(f"    {arg},\n" for arg in args)
    return f"{attribute} = {type(obj).__name__}(\n{body})"


def _render_op(autogen_context: AutogenContext, op: ObjectOp) -> str:
    # one import line naming every kind the revision uses
    imports = autogen_context.imports
    prefix = "from alembic_recipes.replaceable import "
    ours = {line for line in imports if line.startswith(prefix)}
    names = {type(op.target).__name__}
    names.update(n for line in ours for n in line[len(prefix) :].split(", "))
    imports.difference_update(ours)
    imports.add(prefix + ", ".join(sorted(names)))
    reverse = ", reverse=True" if op.reverse_replace else ""
    return f"op.{op.verb}_{op.kind}({op.attribute}{reverse})"


for _table in (CREATE, DROP, REPLACE):
    for _cls in _table.values():
        renderers.dispatch_for(_cls)(_render_op)


def order_operations(context: Any, revision: Any, directives: list[Any]) -> None:
    """A ``process_revision_directives`` step: in every generated script,
    objects are dropped before the table changes and created or replaced
    after them (a view needs its tables; a table cannot go while a view uses
    it), in the upgrade and the downgrade alike.  The templates' env.py runs
    it through :func:`alembic_recipes.autogenerate_hooks`."""
    for script in directives:
        for container in (*script.upgrade_ops_list, *script.downgrade_ops_list):
            drops = [op for op in container.ops if isinstance(op, DropObjectOp)]
            others = [op for op in container.ops if not isinstance(op, ObjectOp)]
            creates = [
                op
                for op in container.ops
                if isinstance(op, ObjectOp) and not isinstance(op, DropObjectOp)
            ]
            container.ops[:] = drops + others + creates


register_directives_step(order_operations)
