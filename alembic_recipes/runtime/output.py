"""What commands print on stdout when they run over several tenants or databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from alembic.config import Config

from ..alembic_internals import running_command

__all__ = ["LABELLED_COMMANDS", "labelled_stdout"]

LABELLED_COMMANDS = frozenset({"current", "history", "heads", "branches", "show"})
"""Commands that print per tenant / database when env.py runs them
(``history --indicate-current``, any with ``revision_environment``)."""


class _Prefixed:
    """A text stream writing *prefix* at the start of every line."""

    def __init__(self, stream: IO[str], prefix: str) -> None:
        self.stream = stream
        self.prefix = prefix
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self._line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._line_start:
                out.append(self.prefix)
            out.append(piece)
            self._line_start = piece.endswith("\n")
        return self.stream.write("".join(out))

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def labelled_stdout(config: Config, label: str | None) -> Iterator[None]:
    """Under ``alembic current`` (and the other :data:`LABELLED_COMMANDS`),
    prefix each line Alembic prints with *label* (``acme: 3f2a9c (head)``);
    otherwise, or with no *label*, change nothing."""
    if label is None or running_command() not in LABELLED_COMMANDS:
        yield
        return
    original = config.stdout
    config.stdout = _Prefixed(original, label)  # type: ignore[assignment]
    try:
        yield
    finally:
        config.stdout = original
