"""Run Alembic for many tenants in one process: a schema or a database per tenant.

``schema`` strategy (PostgreSQL): one database, one schema per tenant, each
with its own ``alembic_version``.  Per tenant, in its own transaction, the
runner points ``search_path`` at the tenant only (``set_config(..., true)``,
a bound parameter: undone when the transaction ends, nothing formatted into
SQL) and lets env.py migrate with ``version_table_schema=<tenant>``.

``database`` strategy: ``sqlalchemy.url`` is a template with ``{tenant}``
(``sqlite:///%(here)s/tenants/{tenant}.db``, ``postgresql+asyncpg://.../app_{tenant}``).

Tenant names are validated before any SQL is sent and always quoted when used.
Tenants already at head are skipped after one batched read; every tenant logs
one progress line; a summary ends the run, non-zero if any tenant failed.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    String,
    bindparam,
    column,
    func,
    inspect,
    literal,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.schema import CreateSchema

from .commands import config_attributes, run_command
from .compiled import CompiledPaths, execute_script
from .connections import (
    Connectable,
    connect_and_run,
    engine_from_options,
    run_with_connection,
)
from .options import get_bool_option, get_option, running_command, x_arguments

__all__ = [
    "NAME_RULE",
    "Tenant",
    "offline_tenants",
    "run_tenants",
    "schema_scope",
    "upgrade_tenant",
    "upgrade_tenant_async",
    "validate_tenant",
]

log = logging.getLogger("alembic.recipes.tenants")

VERSION_TABLE = "alembic_version"
STRATEGIES = ("schema", "database")
ALL = "all"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RESERVED = ("public", "information_schema", ALL)
NAME_RULE = (
    "1 to 63 ASCII letters, digits, '_' or '-', starting with a letter or '_';"
    " 'public', 'information_schema', 'pg_*' and 'all' are reserved"
)
HOW_TO_CHOOSE = (
    "pass -x tenant=NAME[,NAME...] or -x tenant=all (the tenants known from"
    " tenants / tenants_query / tenants_pattern in [alembic]),"
    " or set config.attributes['tenant']"
)


def validate_tenant(name: object, *, source: str = "tenant") -> str:
    """Return *name* if it is a safe tenant name, else raise ``CommandError``."""
    ok = (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and len(name.encode()) <= 63
        and name.lower() not in _RESERVED
        and not name.lower().startswith("pg_")
    )
    if not ok:
        raise CommandError(f"invalid tenant name {name!r} from {source}: {NAME_RULE}")
    return str(name)


@dataclass(frozen=True)
class Tenant:
    """One tenant, as env.py's migrate function sees it."""

    name: str
    strategy: str
    url: str
    """The tenant's database URL (the shared database's for the schema strategy)."""

    @property
    def schema(self) -> str | None:
        """The tenant's schema (``version_table_schema``), None per database."""
        return self.name if self.strategy == "schema" else None

    def include_name(
        self, name: str | None, type_: str, parent_names: dict[str, str | None]
    ) -> bool:
        """Autogenerate filter: hide the tenant's own version table."""
        return not (type_ == "table" and name == VERSION_TABLE)

    def select_offline(self) -> None:
        """Offline: open the tenant's section of the script (and select its schema)."""
        impl = context.get_context().impl
        if self.schema is None:
            impl.static_output(f"-- Tenant {self.name}: database {self.url}\n")
            return
        impl.static_output(f"-- Tenant {self.name}: schema {self.name}\n")
        quoted = impl.dialect.identifier_preparer.quote_identifier(self.name)
        context.execute(f"SET search_path TO {quoted}")


@dataclass(frozen=True)
class _Settings:
    strategy: str
    url: str
    requested: tuple[str, ...] | None  # None: every known tenant
    create: bool
    keep_going: bool
    compiled: bool

    @classmethod
    def from_config(cls, config: Config) -> _Settings:
        strategy = str(get_option(config, "tenant_strategy")[0] or "database")
        if strategy not in STRATEGIES:
            raise CommandError(
                f"invalid tenant_strategy {strategy!r}: expected one of"
                f" {', '.join(STRATEGIES)}"
            )
        url = (config.get_main_option("sqlalchemy.url") or "").strip()
        templated = "{tenant}" in url
        if strategy == "database" and not templated:
            raise CommandError(
                f"tenant_strategy = database needs sqlalchemy.url with {{tenant}},"
                f" got {url!r}"
            )
        if strategy == "schema":
            if templated or not url.startswith("postgresql"):
                raise CommandError(
                    "tenant_strategy = schema needs one PostgreSQL sqlalchemy.url"
                    f" (no {{tenant}}), got {url!r}"
                )
        return cls(
            strategy=strategy,
            url=url,
            requested=_requested(config),
            create=get_bool_option(config, "create", ini_key="create_tenants"),
            keep_going=get_bool_option(config, "continue", ini_key="continue_on_error"),
            compiled=get_bool_option(config, "compiled", ini_key="compiled_upgrades"),
        )

    def tenant(self, name: str) -> Tenant:
        url = (
            self.url.replace("{tenant}", name)
            if self.strategy == "database"
            else self.url
        )
        return Tenant(name, self.strategy, url)


def _requested(config: Config) -> tuple[str, ...] | None:
    x_args = x_arguments(config)
    raw: object
    if "tenant" in x_args:
        raw, source = x_args["tenant"], "-x tenant"
    elif config.attributes.get("tenant") is not None:
        raw, source = config.attributes["tenant"], "config.attributes['tenant']"
    else:
        raise CommandError(f"no tenant given: {HOW_TO_CHOOSE}")
    if isinstance(raw, str):
        names: list[object] = [part.strip(" ") for part in raw.split(",")]
    elif isinstance(raw, Sequence):
        names = list(raw)
    else:
        raise CommandError(
            f"invalid {source}: expected a name, a list of names or 'all', got {raw!r}"
        )
    if names == [ALL]:
        return None
    return tuple(dict.fromkeys(validate_tenant(n, source=source) for n in names))


def _split_list(value: str | None) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value or "") if part]


def _names_from(rows: Sequence[object], source: str) -> list[str]:
    return [validate_tenant(row, source=source) for row in rows]


def _is_reserved(name: str) -> bool:
    return name.lower() in _RESERVED or name.lower().startswith("pg_")


class _Fleet:
    """One run over several tenants: selection, progress, outcome, summary."""

    def __init__(self, config: Config, settings: _Settings) -> None:
        self.config = config
        self.settings = settings
        self.script = ScriptDirectory.from_config(config)
        self.heads = frozenset(self.script.get_heads())
        self.command = running_command()
        try:  # resolved: "head" comes back as the head revision's id
            destination = context.get_revision_argument()
        except KeyError:  # commands without a destination (current, revision)
            destination = None
        targets = (destination,) if isinstance(destination, str) else destination
        self.skip_at_head = self.command in ("upgrade", "stamp") and (
            frozenset(targets or ()) == self.heads
        )
        self.compiled = (
            CompiledPaths(self.script, targets[0])
            if settings.compiled
            and settings.strategy == "schema"
            and self.command == "upgrade"
            and targets
            and len(targets) == 1
            else None
        )
        self.outcomes: dict[str, list[str]] = {}
        self.failures: list[tuple[str, str]] = []
        self.total = 0
        self._ancestors: dict[tuple[str, ...], frozenset[str]] = {}

    # -- which tenants ---------------------------------------------------------
    def select(self, conn: Connection | None) -> list[str]:
        """The tenants of this run, in order; validated, no SQL sent for them yet."""
        settings = self.settings
        if settings.requested is not None:
            names = list(settings.requested)
        else:
            names = self._known(conn)
            if not names:
                raise CommandError(
                    "-x tenant=all found no tenants: list them in tenants, or set"
                    " tenants_query or tenants_pattern in [alembic]"
                )
        if self.command in ("revision", "check") and len(names) != 1:
            raise CommandError(
                "autogenerate compares against one tenant: pass -x tenant=NAME"
                f" (got {len(names)} tenants)"
            )
        self.total = len(names)
        return names

    def _known(self, conn: Connection | None) -> list[str]:
        config = self.config
        names = _names_from(_split_list(config.get_main_option("tenants")), "tenants")
        query = config.get_main_option("tenants_query")
        if query:
            names += _names_from(self._tenants_query(query, conn), "tenants_query")
        pattern = config.get_main_option("tenants_pattern")
        if pattern:
            existing = self._existing(conn)
            matched = sorted(
                n
                for n in existing
                if fnmatch.fnmatchcase(n, pattern) and not _is_reserved(n)
            )
            names += _names_from(matched, "tenants_pattern")
        return list(dict.fromkeys(names))

    def _tenants_query(self, query: str, conn: Connection | None) -> list[object]:
        tenants_url = self.config.get_main_option("tenants_url")
        if conn is not None and not tenants_url:
            return list(conn.scalars(text(query)))
        if not tenants_url:
            raise CommandError(
                "tenants_query needs tenants_url in [alembic]: the database that"
                " holds the tenants table"
            )
        engine = engine_from_options({"sqlalchemy.url": tenants_url})
        return run_with_connection(
            engine, lambda c: list(c.scalars(text(query))), owned=True
        )

    def _existing(self, conn: Connection | None) -> list[str]:
        """Schemas (schema strategy) or databases/files (database strategy)."""
        if self.settings.strategy == "schema":
            assert conn is not None
            sql = text("SELECT schema_name FROM information_schema.schemata")
            return [str(n) for n in conn.scalars(sql)]
        return _existing_databases(self.settings.url)

    # -- one tenant --------------------------------------------------------------
    def at_head(self, versions: Sequence[str]) -> bool:
        return self.skip_at_head and frozenset(versions) == self.heads

    def steps(self, before: Sequence[str], after: Sequence[str]) -> int:
        return len(self.ancestors(before) ^ self.ancestors(after))

    def ancestors(self, heads: Sequence[str]) -> frozenset[str]:
        key = tuple(sorted(heads))
        if key not in self._ancestors:
            revisions = self.script.iterate_revisions(key, "base") if key else []
            self._ancestors[key] = frozenset(r.revision for r in revisions)
        return self._ancestors[key]

    def run_one(
        self,
        index: int,
        name: str,
        work: Callable[[], tuple[Sequence[str], Sequence[str]] | None],
    ) -> bool:
        """Run *work* for tenant *name*; log one line; False to stop the fleet.

        *work* returns ``(before, after)`` versions, or None when the tenant was
        skipped because it is already at head.
        """
        prefix = f"[{index}/{self.total}] {name}:"
        started = time.perf_counter()
        try:
            result = work()
        except Exception as exc:  # one tenant's failure must not hide the others'
            ms = (time.perf_counter() - started) * 1000
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, message)
            self.outcomes.setdefault("failed", []).append(name)
            self.failures.append((name, message))
            return self.settings.keep_going
        ms = (time.perf_counter() - started) * 1000
        if result is None:
            log.info("%s already at head (%s)", prefix, _revs(self.heads))
            self.outcomes.setdefault("already at head", []).append(name)
            return True
        before, after = result
        if self.command == "current":
            state = "at head" if frozenset(after) == self.heads else "behind head"
            log.info("%s %s (%s)", prefix, _revs(after), state)
            self.outcomes.setdefault(state, []).append(name)
        elif tuple(before) == tuple(after):
            log.info("%s %s, nothing to do (%.0f ms)", prefix, _revs(after), ms)
            self.outcomes.setdefault("unchanged", []).append(name)
        else:
            verb = {"upgrade": "upgraded", "downgrade": "downgraded"}.get(
                self.command, self.command or "ran"
            )
            log.info(
                "%s %s %s -> %s (%d revisions) in %.0f ms",
                prefix,
                verb,
                _revs(before),
                _revs(after),
                self.steps(before, after),
                ms,
            )
            self.outcomes.setdefault(verb, []).append(name)
        return True

    def missing(self, name: str) -> Exception:
        what = "schema" if self.settings.strategy == "schema" else "database"
        return CommandError(
            f"tenant {name!r}: {what} does not exist (create it with -x create=true"
            " or create_tenants = true)"
        )

    def finish(self) -> None:
        """Log the summary; raise (non-zero exit) if any tenant failed."""
        done = sum(len(v) for v in self.outcomes.values())
        parts = [f"{len(v)} {k}" for k, v in self.outcomes.items()]
        if done < self.total:
            parts.append(f"{self.total - done} not attempted")
        log.info("Tenants: %d total: %s", self.total, ", ".join(parts) or "none")
        if self.failures:
            detail = "; ".join(f"{name}: {msg}" for name, msg in self.failures)
            hint = (
                ""
                if self.settings.keep_going or done == self.total
                else (" (stopped at the first failure; -x continue=true goes on)")
            )
            raise CommandError(f"{len(self.failures)} tenant(s) failed: {detail}{hint}")


def _revs(versions: Sequence[str] | frozenset[str]) -> str:
    return ",".join(sorted(versions)) or "base"


# -- schema strategy -------------------------------------------------------------
def _schema_state(
    conn: Connection, names: Sequence[str]
) -> tuple[set[str], dict[str, list[str]]]:
    """Existing schemas among *names* and their versions: two queries in all."""
    if not names:
        return set(), {}
    rows = conn.execute(
        text(
            "SELECT n.nspname, c.relname IS NOT NULL FROM pg_namespace n"
            " LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = :table"
            " AND c.relkind IN ('r', 'p') WHERE n.nspname IN :names"
        ).bindparams(bindparam("names", expanding=True)),
        {"table": VERSION_TABLE, "names": list(names)},
    ).all()
    existing = {str(schema) for schema, _ in rows}
    with_table = [str(schema) for schema, has_table in rows if has_table]
    versions: dict[str, list[str]] = {}
    if with_table:
        query = union_all(
            *(
                select(
                    literal(schema, String).label("tenant"),
                    table(
                        VERSION_TABLE, column("version_num"), schema=schema
                    ).c.version_num,
                )
                for schema in with_table
            )
        )
        for tenant, version in conn.execute(query):
            versions.setdefault(tenant, []).append(version)
    return existing, versions


def _heads_after(conn: Connection) -> list[str]:
    """The tenant's versions once env.py ran, read by its migration context."""
    return list(context.get_context().get_current_heads())


@contextmanager
def _default_schema(conn: Connection, schema: str) -> Iterator[None]:
    """Reflection (autogenerate) defaults to the tenant's schema meanwhile."""
    dialect = conn.dialect
    previous = dialect.default_schema_name
    dialect.default_schema_name = schema
    try:
        yield
    finally:
        dialect.default_schema_name = previous


def _search_path(conn: Connection, value: str) -> None:
    conn.execute(select(func.set_config("search_path", value, True)))


@contextmanager
def schema_scope(
    conn: Connection, schema: str, *, create: bool = False
) -> Iterator[None]:
    """A transaction in which *schema* is the only schema on the search_path.

    Its own transaction, or a SAVEPOINT when the caller's transaction is open
    (the caller's search_path is restored afterwards).  *create* creates the
    schema first.  Reflection defaults to the schema meanwhile.
    """
    caller_txn = conn.in_transaction()
    previous = (
        conn.scalar(select(func.current_setting("search_path"))) if caller_txn else ""
    )
    with conn.begin_nested() if caller_txn else conn.begin():
        if create:
            conn.execute(CreateSchema(schema, if_not_exists=True))
        _search_path(conn, conn.dialect.identifier_preparer.quote_identifier(schema))
        with _default_schema(conn, schema):
            yield
    if caller_txn:
        _search_path(conn, str(previous))


def _run_schemas(
    fleet: _Fleet, migrate: Callable[[Connection, Tenant], None], conn: Connection
) -> None:
    caller_txn = conn.in_transaction()  # before we touch it: whose transaction?
    names = fleet.select(conn)
    existing, versions = _schema_state(conn, names)
    if not caller_txn:
        # end the transaction our reads began: Alembic would take an open
        # transaction for the caller's and never commit it (silent rollback)
        conn.rollback()

    for index, name in enumerate(names, 1):
        tenant = fleet.settings.tenant(name)
        before = versions.get(name, [])

        def work(
            tenant: Tenant = tenant, before: list[str] = before
        ) -> tuple[list[str], list[str]] | None:
            if fleet.at_head(before):
                return None
            missing = tenant.name not in existing
            if missing and not fleet.settings.create:
                if fleet.command == "current":
                    return before, before
                raise fleet.missing(tenant.name)
            compiled = fleet.compiled
            sql = compiled.sql_for(conn, before, tenant.name) if compiled else None
            with schema_scope(conn, tenant.name, create=missing):
                if sql is not None:
                    execute_script(conn, sql)
                    after = [compiled.destination] if compiled else []
                else:
                    migrate(conn, tenant)
                    after = _heads_after(conn)
            existing.add(tenant.name)
            return before, after

        if not fleet.run_one(index, name, work):
            break


# -- database strategy -----------------------------------------------------------
def _existing_databases(template: str) -> list[str]:
    """Tenant names whose database exists, for a ``{tenant}`` URL template."""
    url = make_url(template.replace("{tenant}", "TENANTPLACEHOLDER"))
    database = url.database or ""
    before, _, after = database.partition("TENANTPLACEHOLDER")
    if url.get_backend_name() == "sqlite":
        path = Path(database)
        if "TENANTPLACEHOLDER" not in path.name:
            raise CommandError(
                "tenants_pattern needs {tenant} in the file name of sqlalchemy.url"
            )
        before, _, after = path.name.partition("TENANTPLACEHOLDER")
        found = path.parent.glob(f"{before}*{after}") if path.parent.is_dir() else []
        names = [p.name[len(before) : len(p.name) - len(after)] for p in found]
    else:
        names = [
            db[len(before) : len(db) - len(after)]
            for db in _server_databases(template)
            if db.startswith(before) and db.endswith(after)
        ]
    return sorted(n for n in names if n)


def _admin_engine(template: str) -> Any:
    url = make_url(template.replace("{tenant}", "x"))
    admin = url.set(
        database="postgres" if url.get_backend_name() == "postgresql" else None
    )
    return engine_from_options(
        {"sqlalchemy.url": admin.render_as_string(hide_password=False)}
    )


def _server_databases(template: str) -> list[str]:
    backend = make_url(template.replace("{tenant}", "x")).get_backend_name()
    sql = (
        "SELECT datname FROM pg_database"
        if backend == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata"
    )
    return run_with_connection(
        _admin_engine(template),
        lambda conn: [str(n) for n in conn.scalars(text(sql))],
        owned=True,
    )


def _database_exists(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return database in ("", ":memory:") or Path(database).exists()
    return parsed.database in _server_databases(url)


def _create_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        return

    def create(conn: Connection) -> None:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        name = conn.dialect.identifier_preparer.quote_identifier(parsed.database or "")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")

    run_with_connection(_admin_engine(url), create, owned=True)


def _database_versions(conn: Connection) -> list[str]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return []
    return [
        str(v) for v in conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    ]


def _run_databases(
    fleet: _Fleet, migrate: Callable[[Connection, Tenant], None], config: Config
) -> None:
    names = fleet.select(None)
    shared = config.attributes.get("connection")
    if shared is not None and len(names) != 1:
        raise CommandError(
            "config.attributes['connection'] is one database: with"
            f" tenant_strategy = database give one tenant (got {len(names)})"
        )
    options = dict(config.get_section(config.config_ini_section, {}))

    def migrate_on(
        conn: Connection, tenant: Tenant
    ) -> tuple[list[str], list[str]] | None:
        caller_txn = conn.in_transaction()
        before = _database_versions(conn)
        if fleet.at_head(before):
            return None
        if not caller_txn and conn.in_transaction():
            conn.rollback()
        with conn.begin_nested() if caller_txn else conn.begin():
            migrate(conn, tenant)
            after = _heads_after(conn)
        return before, after

    for index, name in enumerate(names, 1):
        tenant = fleet.settings.tenant(name)

        def work(tenant: Tenant = tenant) -> tuple[list[str], list[str]] | None:
            if shared is not None:
                return run_with_connection(shared, lambda c: migrate_on(c, tenant))
            if not _database_exists(tenant.url):
                if not fleet.settings.create:
                    if fleet.command == "current":
                        return [], []
                    raise fleet.missing(tenant.name)
                _create_database(tenant.url)
            engine = engine_from_options({**options, "sqlalchemy.url": tenant.url})
            return run_with_connection(
                engine, lambda c: migrate_on(c, tenant), owned=True
            )

        if not fleet.run_one(index, name, work):
            break


# -- entry points for env.py -----------------------------------------------------
def run_tenants(config: Config, migrate: Callable[[Connection, Tenant], None]) -> None:
    """What a multitenant env.py's ``run_migrations_online()`` calls.

    Reads the strategy and tenants (``-x tenant=...``, ``config.attributes``,
    the ini), then calls ``migrate(connection, tenant)`` once per tenant inside
    that tenant's transaction (a SAVEPOINT when the caller shared a connection
    with a transaction open), with the tenant's schema selected.
    """
    settings = _Settings.from_config(config)
    fleet = _Fleet(config, settings)
    if settings.strategy == "schema":
        connect_and_run(config, lambda conn: _run_schemas(fleet, migrate, conn))
    else:
        _run_databases(fleet, migrate, config)
    fleet.finish()


def offline_tenants(config: Config) -> Iterator[Tenant]:
    """The tenants of an offline (``--sql``) run: those given, or the ini list.

    Connects to nothing, so ``-x tenant=all`` uses only the ``tenants`` list.
    """
    settings = _Settings.from_config(config)
    names = settings.requested
    if names is None:
        names = tuple(
            _names_from(_split_list(config.get_main_option("tenants")), "tenants")
        )
        if not names:
            raise CommandError(
                "offline (--sql) runs connect to nothing: pass -x tenant=NAME[,NAME...]"
                " or list the tenants in tenants = ... in [alembic]"
            )
    for name in names:
        yield settings.tenant(name)


def upgrade_tenant(
    config: Config,
    tenant: str,
    revision: str = "head",
    *,
    connection: Connectable | None = None,
    create: bool = True,
) -> None:
    """Migrate one tenant from application code (e.g. at sign-up); sync.

    Creates its schema/database when missing unless ``create=False``; shares
    *connection* when given (joining its open transaction, if any).
    """
    validate_tenant(tenant, source="upgrade_tenant()")
    extra: dict[str, object] = {"tenant": tenant, "create": create}
    if connection is not None:
        extra["connection"] = connection
    with config_attributes(config, **extra):
        command.upgrade(config, revision)


async def upgrade_tenant_async(
    connectable: Connectable | None,
    config: Config,
    tenant: str,
    revision: str = "head",
    *,
    create: bool = True,
) -> None:
    """Migrate one tenant from async code, sharing *connectable* when given."""
    validate_tenant(tenant, source="upgrade_tenant_async()")
    with config_attributes(config, tenant=tenant, create=create):
        await run_command(command.upgrade, connectable, config, revision)
