"""``-x report=PATH``: a fleet run's record as JSON Lines, written as it goes.

The file is opened (emptied) when the run starts -- a path that cannot be
written fails before then, in the settings -- and gets one JSON object per
tenant as soon as that tenant has an outcome, flushed, so a run killed
halfway leaves every line it finished.  When the run ends, the tenants it
did not reach follow (``not attempted``), then one summary object.
"""

from __future__ import annotations

import json
from typing import IO, Any

__all__ = ["ReportFile"]


class ReportFile:
    """The JSON Lines file of one run."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._written: set[str] = set()

    def open(self) -> None:
        """Empty the file and keep it open for the run's lines."""
        self._file = open(self.path, "w", encoding="utf-8")

    def add(self, name: str, entry: dict[str, Any]) -> None:
        """Tenant *name*'s line, written and flushed now (a later outcome of
        the same tenant -- after a retry -- is a line of its own)."""
        if self._file is None:
            return
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        self._written.add(name)

    def close(self, rest: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        """The lines of the tenants not written yet (*rest*), the summary."""
        if self._file is None:
            return
        for entry in rest:
            if entry["tenant"] not in self._written:
                self._file.write(json.dumps(entry) + "\n")
        self._file.write(json.dumps(summary) + "\n")
        self._file.close()
        self._file = None
