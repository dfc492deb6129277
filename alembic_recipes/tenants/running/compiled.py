"""Fleet upgrades that render a revision path once and replay it per tenant.

A schema-per-tenant ``upgrade`` to head renders the SQL of each distinct path
(tenants at revision X going to the destination) once, through Alembic's own
offline (``--sql``) mode with a placeholder schema, then executes that script
for every tenant on the path, in the tenant's own transaction, followed by one
version write -- instead of Alembic's per-operation Python work, its version
table probes and one version write per revision, for every tenant.

``compiled_upgrades`` (``-x compiled=``) chooses when:

* ``auto`` (the default): only paths whose SQL is provably the same for every
  tenant -- rendered twice, with two placeholder schemas, the scripts must be
  identical (so no ``uuid4()`` or ``now()`` computed in Python), read nothing
  from the database, and use no ``autocommit_block()``;
* ``true``: every path that can be rendered offline; Python-side values
  (``uuid4()``, ``datetime.now()``) are computed once and shared;
* ``false``: never; Alembic runs every tenant.

A revision that cannot be replayed -- it reads the database
(``op.get_bind().execute(...)`` results, an inspector), uses
``autocommit_block()``, or (``auto``) renders differently each time -- runs
the normal way, against each tenant's own data: the path is split around it
into :class:`Segment` s, the stretches that render replayed (one version
write each), the others run by Alembic, all in the tenant's one transaction.
One log line per path names each such revision and why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from ...alembic_internals import (
    before_each_step,
    configured,
    offline_environment,
    refusing_mock_ddl,
    upgrade_steps,
    version_table,
)
from ...database.errors import first_line
from ...logs import logger_for
from ..model.settings import Compile
from .segments import (
    PLACEHOLDER,
    Segment,
    execute_script,
    is_bookkeeping,
    replayed,
    version_writes,
)

__all__ = ["PLACEHOLDER", "CompiledPaths", "Segment", "execute_script"]

log = logger_for(__name__)


_SECOND = "alembic-recipes-check"  # the second render's placeholder


class _Statements:
    """An output buffer keeping each statement Alembic writes, apart."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def write(self, text: str) -> int:
        self.items.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class _Unrendered(Exception):
    """A revision (or path) that is not replayed, and why."""


class CompiledPaths:
    """Upgrade scripts per starting revision, rendered on first use."""

    def __init__(
        self,
        script: ScriptDirectory,
        destination: str,
        mode: Compile = "auto",
        *,
        config: Config,
    ) -> None:
        self.config = config
        """The command's config: what rendered revisions see as theirs."""
        self.script = script
        self.destination = destination
        self.mode = mode
        self._scripts: dict[tuple[tuple[str, ...], bool], list[Segment] | None] = {}
        self._running: str | None = None
        """The revision being rendered (to name it when it fails)."""

    def _entering(self, revision: str) -> None:
        self._running = revision

    def segments_for(
        self,
        dialect: Dialect,
        before: Sequence[str],
        schema: str,
        has_version_table: bool = False,
    ) -> list[Segment] | None:
        """The segments taking *schema* from *before* to the destination, or
        None when nothing of that path is replayed (the caller migrates
        normally).

        *has_version_table*: the schema has its version table already (at base:
        empty, e.g. after a downgrade), so the script must not create it.
        """
        revisions = tuple(sorted(before))
        key = (revisions, has_version_table or bool(revisions))
        if key not in self._scripts:
            self._scripts[key] = self._compile(dialect, *key)
        segments = self._scripts[key]
        if segments is None:
            return None
        return [segment.for_schema(dialect, schema) for segment in segments]

    def _compile(
        self, dialect: Dialect, before: tuple[str, ...], has_version_table: bool
    ) -> list[Segment] | None:
        start = before[0] if before else "base"
        path = f"{start} -> {self.destination}"
        if len(before) > 1:
            self._normally(path, f"several heads {', '.join(before)}")
            return None
        try:
            body, version = self._statements(dialect, before, self.destination)
        except _Unrendered as whole:
            return self._split(dialect, before, has_version_table, path, str(whole))
        writes = version_writes(
            dialect, version, before, self.destination, has_version_table
        )
        log.info("fleet upgrade %s: rendered once, replayed per tenant", path)
        return [Segment(self.destination, "".join([*body, *writes]), path)]

    def _statements(
        self, dialect: Dialect, before: tuple[str, ...], stop: str
    ) -> tuple[list[str], Table]:
        """The statements from *before* to *stop* (no bookkeeping) and the
        version table; :class:`_Unrendered` when they cannot be replayed."""
        start = before[0] if before else "base"
        second: list[str] | None = None  # auto: a second render, to compare
        try:
            first, version = self._render(dialect, before, stop, PLACEHOLDER)
            if self.mode == "auto":
                second, _ = self._render(dialect, before, stop, _SECOND)
        except Exception as exc:  # e.g. a revision reading data through op.get_bind()
            cause = _first_raised(exc)  # not what broke while unwinding it
            where = f"revision {self._running}" if self._running else start
            if isinstance(cause, _Unrendered):
                raise _Unrendered(str(cause)) from exc
            raise _Unrendered(
                f"cannot be rendered offline: {where} raised"
                f" {type(cause).__name__}: {first_line(cause)}"
            ) from exc
        _check_replayable(dialect, first, second)
        return [s for s in first if not is_bookkeeping(s, version)], version

    def _split(
        self,
        dialect: Dialect,
        before: tuple[str, ...],
        has_version_table: bool,
        path: str,
        why: str,
    ) -> list[Segment] | None:
        """*path* revision by revision: consecutive revisions that render form
        a replayed segment, the others Alembic's.  None when the path is not
        a simple chain, or no revision of it renders."""
        chain = _chain(upgrade_steps(self.script, self.destination, before), before)
        if chain is None:
            self._normally(path, why)
            return None
        segments: list[Segment] = []
        normally: list[tuple[str, str]] = []  # (revision, why)
        pending: list[str] = []  # statements of the replayed stretch so far
        start: tuple[str, ...] = before  # where the pending stretch starts
        has_table = has_version_table
        version: Table | None = None
        for previous, revision in chain:
            try:
                body, version = self._statements(dialect, previous, revision)
            except _Unrendered as exc:
                normally.append((revision, str(exc)))
                if pending and version is not None:
                    segments.append(
                        replayed(
                            dialect, version, pending, start, previous[0], has_table
                        )
                    )
                    pending = []
                if segments and segments[-1].sql is None:
                    segments[-1] = Segment(revision)  # one Alembic run for both
                else:
                    segments.append(Segment(revision))
                start, has_table = (revision,), True
                continue
            pending.extend(body)
        if pending and version is not None:
            end = self.destination
            segments.append(replayed(dialect, version, pending, start, end, has_table))
        if all(segment.sql is None for segment in segments):
            self._normally(path, why)
            return None
        log.info(
            "fleet upgrade %s: %d of %d revisions replayed from scripts rendered"
            " once; Alembic runs %d per tenant, in its transaction: %s",
            path,
            len(chain) - len(normally),
            len(chain),
            len(normally),
            _grouped(normally),
        )
        return segments

    def _normally(self, path: str, reason: str) -> None:
        """Log why *path* is not replayed."""
        log.info(
            "fleet upgrade: %s %s; Alembic runs each tenant on that path instead",
            path,
            reason,
        )

    def _render(
        self, dialect: Dialect, before: tuple[str, ...], destination: str, schema: str
    ) -> tuple[list[str], Table]:
        """The statements from *before* to *destination*, one per item, for
        placeholder *schema*."""
        buffer = _Statements()

        self._running = None

        def steps(heads: object, context: MigrationContext) -> object:
            # what `alembic upgrade` itself runs: the steps from heads to destination
            found = list(upgrade_steps(self.script, destination, heads))
            before_each_step(found, self._entering)
            return found

        with (
            _quiet(),
            _checkfirst_unrendered(),
            offline_environment(
                self.config,
                self.script,
                dialect,
                fn=steps,
                starting_rev=before[0] if before else None,
                destination_rev=destination,
                output_buffer=buffer,
                literal_binds=True,
                # the tenant's transaction is ours: only autocommit_block()
                # writes COMMIT (and BEGIN) into the script
                transactional_ddl=True,
                version_table_schema=schema,
                # what env.py gave its own configure(), once it did
                **configured("target_metadata", "version_table", "version_table_pk"),
            ) as env,
        ):
            env.run_migrations()
            context = env.get_context()
        return buffer.items, version_table(context)


def _check_replayable(
    dialect: Dialect, first: list[str], second: list[str] | None
) -> None:
    """:class:`_Unrendered` when the statements *first* cannot be replayed:
    an ``autocommit_block()``, or (*second*: a render with another
    placeholder) SQL that differs from one rendering to the next."""
    if any(s.strip().rstrip(";").upper() == "COMMIT" for s in first):
        raise _Unrendered("uses autocommit_block()")
    if second is None:
        return
    quote = dialect.identifier_preparer.quote_identifier
    again = [s.replace(quote(_SECOND), quote(PLACEHOLDER)) for s in second]
    if again != first:
        raise _Unrendered(
            "its SQL differs from one rendering to the next (a value"
            " computed in Python, such as uuid4() or now())"
        )


@contextmanager
def _checkfirst_unrendered() -> Iterator[None]:
    """Meanwhile a revision creating or dropping what it finds in the
    database (``ENUM.create(bind)``, ``create_all(bind)``: ``checkfirst``)
    on this thread cannot be rendered: offline, SQLAlchemy's mock connection
    drops the check and would always emit the statement, which the online
    run emits only when the object is (not) there.  (The version table Alembic
    creates in the placeholder schema is ours: its script is ours too.)"""
    thread = threading.get_ident()

    def refuse(element: Any, options: dict[str, Any]) -> None:
        ours = getattr(element, "schema", None) in (PLACEHOLDER, _SECOND)
        checks = options.get("checkfirst", True)
        if threading.get_ident() == thread and checks and not ours:
            raise _Unrendered(
                "it creates or drops what it finds in the database (checkfirst)"
            )

    with refusing_mock_ddl(refuse):
        yield


class _ThisThreadsInfo(logging.Filter):
    """Drops INFO (and lower) records logged by one thread."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno > logging.INFO


@contextmanager
def _quiet() -> Iterator[None]:
    """Rendering is no migration: keep Alembic's "Running upgrade" lines of
    this render out of the log, changing no logger's level (other threads
    migrating meanwhile log as usual)."""
    logger = logging.getLogger("alembic.runtime.migration")
    quiet = _ThisThreadsInfo()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _grouped(normally: list[tuple[str, str]]) -> str:
    """``r1, r3 (uses autocommit_block()); r7 (...)``: revisions by reason."""
    by_reason: dict[str, list[str]] = {}
    for revision, why in normally:
        by_reason.setdefault(why, []).append(revision)
    return "; ".join(
        f"{', '.join(revisions)} ({why})" for why, revisions in by_reason.items()
    )


def _chain(
    steps: Any, before: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str]] | None:
    """``(revisions before, revision)`` of each step, when the steps are a
    simple chain from *before* (no merge, no branch point); else None."""
    chain: list[tuple[tuple[str, ...], str]] = []
    previous = before
    for step in steps:
        revision = getattr(step, "revision", None)
        if revision is None:
            return None
        down = revision.down_revision
        downs = tuple(down) if isinstance(down, (tuple, list)) else (down,)
        if tuple(d for d in downs if d) != previous:
            return None
        chain.append((previous, str(revision.revision)))
        previous = (str(revision.revision),)
    return chain


def _first_raised(exc: BaseException) -> BaseException:
    """The exception that started *exc*'s chain: rendering offline fails in
    a revision, and Alembic's cleanup can fail again on the mock connection
    (``'MockConnection' object has no attribute 'close'``)."""
    seen = {id(exc)}
    while True:
        earlier = exc.__cause__ or exc.__context__
        if earlier is None or id(earlier) in seen:
            return exc
        seen.add(id(earlier))
        exc = earlier
