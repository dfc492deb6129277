"""Declarations of replaceable objects and their SQL, per database.

An object is declared once, as a module-level value of the revision that
creates it (or of the models, for autogenerate); a later definition names the
one it replaces as ``replaces="<revision>.<attribute>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from alembic.util import CommandError
from sqlalchemy.engine import Dialect

__all__ = [
    "Function",
    "MaterializedView",
    "Procedure",
    "ReplaceableObject",
    "Trigger",
    "View",
]

_POSTGRESQL = "postgresql"
_MYSQL = ("mysql", "mariadb")
_SQLITE = "sqlite"
_SHOWN = {_POSTGRESQL: "PostgreSQL", _SQLITE: "SQLite", "mysql": "MySQL/MariaDB"}


@dataclass(frozen=True)
class ReplaceableObject:
    """A schema object created and dropped whole (base of the kinds below).

    *name*: its name; functions and procedures add their arguments, as in
    ``"add_customer(name varchar, n integer)"``.  *definition*: the SQL after
    the ``CREATE <KIND> <name>`` part.  *schema*: ``None`` creates it where
    unqualified names go (the tenant's schema under the multitenant schema
    strategy).  *replaces*: ``"<revision>.<attribute>"``, the declaration this
    one replaces, checked when revisions load.
    """

    name: str
    definition: str
    schema: str | None = None
    replaces: str | None = None

    kind: ClassVar[str] = "object"
    """The word in op names: ``op.create_<kind>()`` / ``drop_`` / ``replace_``."""
    dialects: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not self.bare_name.replace("_", "").replace("$", "").isalnum():
            raise ValueError(
                f"invalid {self.kind} name {self.name!r}: letters, digits and '_'"
                + (", then (arguments)" if self.has_arguments else "")
            )

    has_arguments: ClassVar[bool] = False

    @property
    def bare_name(self) -> str:
        """The name without arguments."""
        return self.name.split("(", 1)[0].strip()

    @property
    def arguments(self) -> str:
        """``(a integer, b text)``, or ``""`` for kinds without arguments."""
        rest = self.name[len(self.bare_name) :].strip()
        return rest if self.has_arguments else ""

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """What makes two declarations the same database object."""
        return (self.kind, self.schema, self.bare_name.lower())

    def qualified(self, dialect: Dialect) -> str:
        """The quoted, schema-qualified name (without arguments)."""
        prep = dialect.identifier_preparer
        name = prep.quote(self.bare_name)
        return f"{prep.quote_schema(self.schema)}.{name}" if self.schema else name

    def check_dialect(self, dialect: Dialect) -> None:
        """Refuse, before any SQL, a kind this database does not have."""
        if _family(dialect) not in self.dialects:
            have = ", ".join(_SHOWN[d] for d in self.dialects)
            raise CommandError(
                f"{self.kind.replace('_', ' ')} {self.name!r}: {dialect.name} has"
                f" no {self.kind.replace('_', ' ')}s ({have} do)"
            )

    def create_sql(self, dialect: Dialect, name: str | None = None) -> str:
        """``CREATE ...``; *name* replaces the qualified name (comparisons)."""
        raise NotImplementedError

    def replace_sql(self, old: ReplaceableObject, dialect: Dialect) -> list[str]:
        """The statements replacing *old* by this definition: drop, create."""
        return [old.drop_sql(dialect), self.create_sql(dialect)]

    def drop_sql(self, dialect: Dialect) -> str:
        """``DROP ...``."""
        self.check_dialect(dialect)
        return f"DROP {self.sql_kind} {self.qualified(dialect)}"

    @property
    def sql_kind(self) -> str:
        return self.kind.upper().replace("_", " ")


def _normal(sql: str) -> str:
    return " ".join(sql.lower().split())


def _family(dialect: Dialect) -> str:
    return "mysql" if dialect.name in _MYSQL else dialect.name


@dataclass(frozen=True)
class View(ReplaceableObject):
    """``CREATE VIEW name AS <definition>``: PostgreSQL, SQLite, MySQL/MariaDB.

    *definition* is the ``SELECT``.
    """

    kind: ClassVar[str] = "view"
    dialects: ClassVar[tuple[str, ...]] = (_POSTGRESQL, _SQLITE, "mysql")

    def create_sql(self, dialect: Dialect, name: str | None = None) -> str:
        self.check_dialect(dialect)
        target = name or self.qualified(dialect)
        return f"CREATE VIEW {target} AS {self.definition.strip()}"


@dataclass(frozen=True)
class MaterializedView(ReplaceableObject):
    """``CREATE MATERIALIZED VIEW name AS <definition>``: PostgreSQL.

    *with_data*: populate it when created (``WITH [NO] DATA``).
    """

    with_data: bool = True

    kind: ClassVar[str] = "materialized_view"
    dialects: ClassVar[tuple[str, ...]] = (_POSTGRESQL,)

    def create_sql(self, dialect: Dialect, name: str | None = None) -> str:
        self.check_dialect(dialect)
        data = "WITH DATA" if self.with_data else "WITH NO DATA"
        target = name or self.qualified(dialect)
        return f"CREATE MATERIALIZED VIEW {target} AS {self.definition.strip()} {data}"


@dataclass(frozen=True)
class Function(ReplaceableObject):
    """``CREATE FUNCTION name(args) <definition>``: PostgreSQL, MySQL/MariaDB.

    ``Function("total(a integer, b integer)", "RETURNS integer LANGUAGE sql
    AS $$ SELECT a + b $$")`` on PostgreSQL; ``"RETURNS INT DETERMINISTIC
    RETURN a + b"`` on MariaDB.
    """

    kind: ClassVar[str] = "function"
    dialects: ClassVar[tuple[str, ...]] = (_POSTGRESQL, "mysql")
    has_arguments: ClassVar[bool] = True

    def drop_sql(self, dialect: Dialect) -> str:
        # PostgreSQL names an overload by its argument types; MySQL by name
        args = (self.arguments or "()") if _family(dialect) == _POSTGRESQL else ""
        return super().drop_sql(dialect) + args

    def replace_sql(self, old: ReplaceableObject, dialect: Dialect) -> list[str]:
        """On PostgreSQL, with the same arguments: ``CREATE OR REPLACE`` (what
        depends on it -- a trigger, a view -- stays); else drop and create."""
        same = _normal(old.arguments) == _normal(self.arguments)
        if _family(dialect) == _POSTGRESQL and same and old.schema == self.schema:
            return [
                self.create_sql(dialect).replace("CREATE ", "CREATE OR REPLACE ", 1)
            ]
        return super().replace_sql(old, dialect)

    def create_sql(self, dialect: Dialect, name: str | None = None) -> str:
        self.check_dialect(dialect)
        target = name or self.qualified(dialect)
        arguments = self.arguments or "()"
        return f"CREATE {self.sql_kind} {target}{arguments} {self.definition.strip()}"


@dataclass(frozen=True)
class Procedure(Function):
    """``CREATE PROCEDURE name(args) <definition>``: PostgreSQL 11+, MySQL/MariaDB."""

    kind: ClassVar[str] = "procedure"


@dataclass(frozen=True)
class Trigger(ReplaceableObject):
    """``CREATE TRIGGER name <when> ON <table> <definition>``: PostgreSQL,
    SQLite, MySQL/MariaDB.

    ``Trigger("touch", table="customer", when="BEFORE UPDATE",
    definition="FOR EACH ROW EXECUTE FUNCTION touch()")``; *schema* is the
    table's schema.
    """

    table: str = ""
    when: str = ""

    kind: ClassVar[str] = "trigger"
    dialects: ClassVar[tuple[str, ...]] = (_POSTGRESQL, _SQLITE, "mysql")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.table or not self.when:
            raise ValueError(
                f"trigger {self.name!r} needs table= and when= (e.g."
                " when='AFTER INSERT')"
            )
        if not re.fullmatch(
            r"(BEFORE|AFTER|INSTEAD\s+OF)\s+.+", self.when.strip(), re.I
        ):
            raise ValueError(
                f"invalid when={self.when!r} for trigger {self.name!r}: BEFORE,"
                " AFTER or INSTEAD OF, then the events"
            )

    @property
    def identity(self) -> tuple[str, str | None, str]:
        return (
            self.kind,
            self.schema,
            f"{self.table.lower()}.{self.bare_name.lower()}",
        )

    def _table(self, dialect: Dialect) -> str:
        prep = dialect.identifier_preparer
        table = prep.quote(self.table)
        return f"{prep.quote_schema(self.schema)}.{table}" if self.schema else table

    def _trigger_name(self, dialect: Dialect, name: str | None) -> str:
        if name:
            return name
        # PostgreSQL's trigger lives in its table's schema: no qualification
        if _family(dialect) == _POSTGRESQL:
            return dialect.identifier_preparer.quote(self.bare_name)
        return self.qualified(dialect)

    def create_sql(self, dialect: Dialect, name: str | None = None) -> str:
        self.check_dialect(dialect)
        return (
            f"CREATE TRIGGER {self._trigger_name(dialect, name)} {self.when.strip()}"
            f" ON {self._table(dialect)} {self.definition.strip()}"
        )

    def drop_sql(self, dialect: Dialect) -> str:
        self.check_dialect(dialect)
        if _family(dialect) == _POSTGRESQL:
            name = self._trigger_name(dialect, None)
            return f"DROP TRIGGER {name} ON {self._table(dialect)}"
        return f"DROP TRIGGER {self.qualified(dialect)}"


KINDS: dict[str, type[ReplaceableObject]] = {
    cls.kind: cls for cls in (View, MaterializedView, Function, Procedure, Trigger)
}
"""Every kind, by the word its operations use."""
