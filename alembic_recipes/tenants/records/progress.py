"""How a fleet run shows how far it is: a live bar on a terminal, lines in logs.

``progress`` (ini, ``-x progress=``) chooses:

* ``auto`` (default): ``bar`` when stderr is a terminal, else ``lines``;
* ``bar``: one live line (tqdm) -- done / total, rate, ETA, failed tenants,
  the rollout wave -- in place of the per-tenant lines; warnings and
  failures still print, above the bar; the summary follows it;
* ``lines``: a line per tenant, and every ``progress_interval`` one
  ``Progress:`` line (done / total, failed, rate, ETA) for logs and CI;
* ``quiet``: failures, warnings and the summary only.

Only the commands that change tenants (upgrade, downgrade, stamp) show a
bar; ``current`` and ``check`` print their lines, which are their answer.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ...logs import logger_for
from ..model.reading import ProgressMode

__all__ = ["Progress"]

if TYPE_CHECKING:
    from tqdm import tqdm

log = logger_for(__name__)

_ALEMBIC = logging.getLogger("alembic")
"""Whose INFO lines the bar replaces (Alembic's, ours under it)."""


class Progress:
    """One fleet run's progress, shown as *mode* says (``auto`` resolved
    against stderr); ``Progress:`` lines every *every* seconds (0: none)."""

    def __init__(self, mode: ProgressMode, every: float, *, changes: bool) -> None:
        if mode == "auto":
            mode = "bar" if changes and sys.stderr.isatty() else "lines"
        elif mode == "bar" and not changes:
            mode = "lines"  # current / check: the lines are the answer
        self.mode = mode
        self.every = every
        self.total = 0
        self.failed = 0
        self.wave = ""
        self.started = time.monotonic()
        self._said_at = self.started
        self._bar: tqdm[Any] | None = None
        self._stack = ExitStack()

    @property
    def lines(self) -> bool:
        """Whether each tenant gets its own line."""
        return self.mode == "lines"

    def start(self, total: int) -> None:
        """The run has *total* tenants: open the bar (for more than one);
        ``bar`` and ``quiet`` hold Alembic's INFO lines back until :meth:`close`."""
        self.total = total
        self.started = self._said_at = time.monotonic()
        if self.mode == "lines" or self._bar is not None:
            return
        stack = self._stack
        level = _ALEMBIC.level
        stack.callback(_ALEMBIC.setLevel, level)
        if _ALEMBIC.getEffectiveLevel() < logging.WARNING:
            _ALEMBIC.setLevel(logging.WARNING)  # no per-tenant INFO lines
        if self.mode == "quiet" or total < 2:
            return
        from tqdm import tqdm  # only on a terminal: its import costs 20 ms
        from tqdm.contrib.logging import logging_redirect_tqdm

        # warnings and failures print above the bar, never through it
        stack.enter_context(logging_redirect_tqdm([logging.getLogger(), _ALEMBIC]))
        self._bar = stack.enter_context(
            tqdm(
                total=total,
                desc="Tenants",
                unit="tenant",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        )

    def advance(self, done: int, *, failed: bool = False) -> None:
        """One more tenant has an outcome (*done* so far)."""
        if failed:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
            if failed:
                self._postfix()
            return
        if self.mode == "lines":
            self._line(done)

    def in_wave(self, label: str) -> None:
        """The run enters rollout wave *label* (``wave 2 of 3 (10%)``)."""
        self.wave = label
        if self._bar is not None:
            self._postfix()

    def close(self) -> None:
        """Take the bar down, Alembic's log level back: the summary follows."""
        self._stack.close()
        self._bar = None

    def _postfix(self) -> None:
        assert self._bar is not None
        wave = f", {self.wave}" if self.wave else ""
        self._bar.set_postfix_str(f"{self.failed} failed{wave}", refresh=True)

    def _line(self, done: int) -> None:
        """Every ``progress_interval``: one line of how far the run is."""
        now = time.monotonic()
        if not self.every or now - self._said_at < self.every:
            return
        self._said_at = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = self.total - done
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        wave = f", {self.wave}" if self.wave else ""
        log.info(
            "Progress: %d/%d tenants done (%d failed), %.1f tenants/s, %d left,"
            " ETA %s%s",
            done,
            self.total,
            self.failed,
            rate,
            left,
            eta,
            wave,
        )
