"""One run over several tenants: what to skip, progress lines, the summary.

Every tenant logs one line through Alembic's logging (``[3/200] acme:
upgraded base -> 3f2a9c (5 revisions) in 35 ms``), the run ends with one
summary line, and fails when a tenant failed.  A run over exactly one tenant
lets that tenant's exception through unchanged, as stock Alembic would; a
fleet logs each failure once, in full (traceback and SQL), and its final
error is chained to the first failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from alembic import context
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ..locks import migration_lock
from ..options import running_command
from ..output import labelled_stdout
from .config import TenantSettings
from .discovery import known_tenants, listed_tenants

__all__ = ["MIGRATED_ELSEWHERE", "Fleet", "Outcome", "Work"]

log = logging.getLogger("alembic.recipes.tenants")

MIGRATED_ELSEWHERE = "migrated by another run meanwhile"
Outcome = tuple[Sequence[str], Sequence[str]] | str | None
"""One tenant's result: ``(versions before, versions after)``; None when the
batched read found it at head; :data:`MIGRATED_ELSEWHERE` when it was found at
head once locked."""
Work = Callable[[], Outcome]

_VERBS = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}
_QUIET = ("revision", "check")  # autogenerate: the revision file is the output


class Fleet:
    """The state of one multitenant command over its tenants."""

    def __init__(self, settings: TenantSettings, *, shared: bool = False) -> None:
        self.settings = settings
        self.shared = shared
        """This run migrates the shared scope (``shared_scope``) alone."""
        self.config = settings.config
        # env.py's own script directory: its revision files are loaded already
        environment = getattr(context, "_proxy", None)
        self.script: ScriptDirectory = (
            environment.script
            if environment is not None and environment.config is self.config
            else ScriptDirectory.from_config(self.config)
        )
        self.heads = frozenset(self.script.get_heads())
        self.command = running_command()
        try:  # resolved: "head" comes back as the head revision's id
            destination = context.get_revision_argument()
        except KeyError:  # commands without a destination (current, revision)
            destination = None
        self.targets: tuple[str, ...] = (
            (destination,) if isinstance(destination, str) else tuple(destination or ())
        )
        self.skip_at_head = self.command in ("upgrade", "stamp") and (
            frozenset(self.targets) == self.heads
        )
        self.outcomes: dict[str, list[str]] = {}
        self.failures: list[tuple[str, Exception]] = []
        self.interrupted: list[str] = []
        """Tenants a worker was on when interrupted (rolled back)."""
        self.was_interrupted = False
        self.worker_errors: list[Exception] = []
        self.total = 0
        self._listed: frozenset[str] | None = None
        self._ancestors: dict[tuple[str, ...], frozenset[str]] = {}

    @property
    def autogenerates(self) -> bool:
        """True for ``revision`` and ``check``: env.py compares, nothing runs."""
        return self.command in _QUIET

    @property
    def writes(self) -> bool:
        """True for commands that change the database (may create tenants)."""
        return self.command not in ("current", *_QUIET)

    # -- which tenants ---------------------------------------------------------
    def select(self, conn: Connection | None) -> list[str]:
        """The tenants of this run, in order; validated, no SQL sent for them yet."""
        settings = self.settings
        if self.shared:
            self.total = 1
            return [str(settings.shared)]
        if settings.every:
            names = known_tenants(settings, conn)
            if not names:
                raise CommandError(
                    "-x tenant=all found no tenants: list them in tenants, or set"
                    " tenants_query or tenants_pattern in [alembic]"
                )
        else:
            names = settings.named()
        if self.command in _QUIET and len(names) != 1:
            raise CommandError(
                "autogenerate compares against one tenant: pass -x tenant=NAME"
                f" (got {len(names)} tenants)"
            )
        self.total = len(names)
        return names

    def load_listed(self, conn: Connection | None, missing: Sequence[str]) -> None:
        """Read which tenants are listed, when *missing* ones may need it (create
        = known).  Call before the tenants' transactions begin."""
        if missing and self.settings.create == "known" and self._listed is None:
            self._listed = frozenset(listed_tenants(self.settings, conn))

    def may_create(self, name: str) -> bool:
        """Whether tenant *name*'s missing schema/database is created now."""
        create = self.settings.create
        if self.command == "current":
            return False  # status never creates anything
        if self.shared:
            return True
        if create == "never":
            return False
        return create == "always" or name in (self._listed or ())

    def missing(self, name: str) -> Exception:
        what = "schema" if self.settings.strategy == "schema" else "database"
        why = (
            f" and {name!r} is not listed in tenants / tenants_query"
            if self.settings.create == "known"
            else " and create_tenants = false"
        )
        return CommandError(
            f"tenant {name!r}: {what} does not exist{why} (create it with"
            " -x create=true or create_tenants = true)"
        )

    # -- one tenant --------------------------------------------------------------
    def lock(
        self, conn: Connection, *, schema: str | None = None
    ) -> AbstractContextManager[None]:
        """The tenant's migration lock (on *conn*), when this command takes it."""
        if not self.settings.locks():
            return nullcontext()
        return migration_lock(conn, schema=schema, timeout=self.settings.lock_timeout)

    def at_head(self, versions: Sequence[str]) -> bool:
        return self.skip_at_head and frozenset(versions) == self.heads

    def run_one(self, index: int, name: str, work: Work) -> bool:
        """Run *work* for tenant *name*; log one line; False to stop the fleet."""
        started = time.perf_counter()
        try:
            with self._labelled_stdout(name):
                result = work()
        except Exception as exc:
            if self.total == 1:
                raise  # one tenant: its error, unchanged, as stock Alembic
            self.record_failure(index, name, exc, time.perf_counter() - started)
            return self.settings.keep_going
        self.record(index, name, result, time.perf_counter() - started)
        return True

    def record(self, index: int, name: str, result: Outcome, seconds: float) -> None:
        """Log tenant *name*'s line (the *index*-th done) and count its outcome."""
        if self.command not in _QUIET:
            prefix = (
                f"shared scope {name}:"
                if self.shared
                else f"[{index}/{self.total}] {name}:"
            )
            self._report(prefix, name, result, seconds)

    def record_failure(
        self,
        index: int,
        name: str,
        exc: Exception,
        seconds: float,
        *,
        text: str | None = None,
    ) -> None:
        """Log tenant *name*'s failure once, in full: traceback and SQL (*text*
        when it happened in a worker process); a CommandError as one line."""
        prefix = f"[{index}/{self.total}] {name}:"
        ms = seconds * 1000
        if text is not None:
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, text)
        elif isinstance(exc, CommandError):
            log.error("%s FAILED after %.0f ms: %s", prefix, ms, exc)
        else:
            log.error(
                "%s FAILED after %.0f ms: %s", prefix, ms, type(exc).__name__,
                exc_info=exc,
            )  # fmt: skip
        self.outcomes.setdefault("failed", []).append(name)
        self.failures.append((name, exc))

    def _report(self, prefix: str, name: str, result: Outcome, seconds: float) -> None:
        if result is None or isinstance(result, str):
            extra = f"; {result}" if result else ""
            log.info("%s already at head (%s%s)", prefix, _revs(self.heads), extra)
            self.outcomes.setdefault("already at head", []).append(name)
            return
        before, after = result
        if self.command == "current":
            state = "at head" if frozenset(after) == self.heads else "behind head"
            log.info("%s %s (%s)", prefix, _revs(after), state)
            self.outcomes.setdefault(state, []).append(name)
        elif tuple(before) == tuple(after):
            ms = seconds * 1000
            log.info("%s %s, nothing to do (%.0f ms)", prefix, _revs(after), ms)
            self.outcomes.setdefault("unchanged", []).append(name)
        else:
            verb = _VERBS.get(self.command, self.command or "ran")
            steps = self.steps(before, after)
            log.info(
                "%s %s %s -> %s (%d revision%s) in %.0f ms",
                prefix,
                verb,
                _revs(before),
                _revs(after),
                steps,
                "" if steps == 1 else "s",
                seconds * 1000,
            )
            self.outcomes.setdefault(verb, []).append(name)

    def steps(self, before: Sequence[str], after: Sequence[str]) -> int:
        return len(self._ancestors_of(before) ^ self._ancestors_of(after))

    def _ancestors_of(self, heads: Sequence[str]) -> frozenset[str]:
        key = tuple(sorted(heads))
        if key not in self._ancestors:
            revisions = self.script.iterate_revisions(key, "base") if key else []
            self._ancestors[key] = frozenset(r.revision for r in revisions)
        return self._ancestors[key]

    def _labelled_stdout(self, name: str) -> AbstractContextManager[None]:
        """``current`` over several tenants: prefix each printed line with the
        tenant's name (``acme: 3f2a9c (head)``)."""
        if self.shared:
            return labelled_stdout(self.config, "shared: ")
        several = self.total > 1 or self.settings.every or self.settings.shared_runs
        return labelled_stdout(self.config, f"{name}: " if several else None)

    # -- the end -----------------------------------------------------------------
    def finish(self) -> None:
        """Log the summary; raise (non-zero exit) if any tenant failed."""
        if self.command in _QUIET or self.shared:
            return
        if self.interrupted:
            self.outcomes["interrupted (rolled back)"] = self.interrupted
        done = sum(len(v) for v in self.outcomes.values())
        parts = [f"{len(v)} {k}" for k, v in self.outcomes.items()]
        if done < self.total:
            parts.append(f"{self.total - done} not attempted")
        log.info("Tenants: %d total: %s", self.total, ", ".join(parts) or "none")
        if self.was_interrupted:
            raise CommandError(
                f"interrupted: {self.total - done} of {self.total} tenants not"
                " attempted; each tenant that ran was committed or rolled back whole"
            )
        if self.worker_errors:
            raise CommandError(
                "a worker process failed (logged above); "
                f"{self.total - done} of {self.total} tenants not attempted"
            ) from self.worker_errors[0]
        if self.failures:
            names = ", ".join(name for name, _ in self.failures)
            hint = (
                ""
                if self.settings.keep_going or done == self.total
                else " (stopped at the first failure; -x continue=true goes on)"
            )
            raise CommandError(
                f"{len(self.failures)} of {self.total} tenants failed: {names}"
                f"{hint}; each failure is logged above"
            ) from self.failures[0][1]


def _revs(versions: Sequence[str] | frozenset[str]) -> str:
    return ",".join(sorted(versions)) or "base"
