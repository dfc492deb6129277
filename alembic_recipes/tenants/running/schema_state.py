"""What one batched read knows of the tenants' schemas: which exist, which
have a version table, and their versions (schema strategy)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from sqlalchemy import (
    text,
)
from sqlalchemy.engine import Connection

from ...alembic_internals import (
    VERSION_TABLE,
)
from ...database.connections import (
    own_read,
)

__all__ = ["refresh", "schema_exists", "schema_state", "shared_only"]


_CHUNK = 100
"""Tenants per version read: statements of a bounded size, each in a
transaction of its own -- reading a table locks it until the transaction
ends, and PostgreSQL's lock table holds about 64 per connection (10,000
tenants at once failed with "out of shared memory")."""


_STATE = text(
    # per name: the schema, whether it has a version table, and its versions,
    # read by the server (query_to_xml runs one small query per table) in one
    # static statement -- a UNION ALL of the tables written out by the client
    # cost 9.9 ms per 100 tenants on a new connection, this 8.3, and the
    # client no longer builds 100 bound parameters.  The schemas by a join,
    # not "= ANY(...)": 15 ms for 5,000 names, not 700.  The version table by
    # its qualified name (to_regclass, then pg_class by oid: one index lookup
    # each): matched on pg_class by name, in a join or an EXISTS, the planner
    # may read every tenant's version table for each name -- 9.6 ms per
    # tenant at 10,000 schemas
    "SELECT nspname, kind IN ('r', 'p') IS TRUE, CASE WHEN kind IN ('r', 'p')"
    " THEN CAST(xpath('/table/row/v/text()', query_to_xml(format("
    "'SELECT version_num AS v FROM %I.%I', nspname, CAST(:table AS text)),"
    " false, false, '')) AS text[]) END"
    " FROM (SELECT n.nspname, (SELECT c.relkind FROM pg_class c WHERE c.oid ="
    " to_regclass(format('%I.%I', n.nspname, CAST(:table AS text)))) AS kind"
    " FROM unnest(CAST(:names AS text[])) AS s(name)"
    " JOIN pg_namespace n ON n.nspname = s.name) AS found"
)


def schema_state(
    conn: Connection, names: Sequence[str]
) -> tuple[set[str], set[str], dict[str, list[str]]]:
    """Existing schemas among *names*, those with a version table, and their
    versions: one statement per :data:`_CHUNK` of names."""
    existing: set[str] = set()
    with_table: set[str] = set()
    versions: dict[str, list[str]] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        with own_read(conn):
            rows = conn.execute(_STATE, {"names": chunk, "table": VERSION_TABLE})
            for schema, has_table, found in rows:
                existing.add(schema)
                if has_table:
                    with_table.add(schema)
                if found:  # XML text: "&", "<" and ">" come back escaped
                    versions[schema] = [html.unescape(v) for v in found]
    return existing, with_table, versions


def shared_only(conn: Connection, shared: str, schema: str) -> frozenset[str]:
    """Tables of schema *shared* that schema *schema* has none of."""
    rows = conn.scalars(
        text(
            "SELECT tablename FROM pg_tables WHERE schemaname = :shared EXCEPT"
            " SELECT tablename FROM pg_tables WHERE schemaname = :schema"
        ),
        {"shared": shared, "schema": schema},
    )
    return frozenset(rows)


def refresh(
    name: str,
    state: tuple[set[str], set[str], dict[str, list[str]]],
    existing: set[str],
    with_table: set[str],
    versions: dict[str, list[str]],
) -> None:
    """Replace what the batched read knew of tenant *name* by a fresh read."""
    fresh_existing, fresh_with_table, fresh_versions = state
    for known, fresh in ((existing, fresh_existing), (with_table, fresh_with_table)):
        known.discard(name)
        known.update(fresh)
    versions[name] = fresh_versions.get(name, [])


def schema_exists(conn: Connection, name: str) -> bool:
    """Whether schema *name* exists (read now, on *conn*)."""
    found = conn.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :n"), {"n": name}
    ).first()
    return found is not None
