"""A database failure as one line, and the driver errors behind it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    pass

__all__ = ["connection_lost", "driver_errors", "failing_as", "first_line"]


def first_line(message: object) -> str:
    """The first line of *message* (an exception or text), for one-line errors."""
    return (str(message).strip().splitlines() or [""])[0]


@contextmanager
def failing_as(what: str) -> Iterator[None]:
    """Turn any error inside into one ``CommandError``: ``"<what>: <Type>:
    <first line>"``, chained to the original (``__cause__``) for callers who
    want the traceback.  For configuration and connection problems, which
    the CLI should report as one ``FAILED:`` line; ``CommandError`` passes."""
    try:
        yield
    except CommandError:
        raise
    except Exception as exc:
        raise CommandError(f"{what}: {type(exc).__name__}: {first_line(exc)}") from exc


def connection_lost(exc: BaseException | None) -> CommandError | None:
    """A one-line error for *exc* when it (or one of its causes) lost the
    connection -- the server restarted, ``pg_terminate_backend``, the network
    -- whose open transaction was therefore never committed; None otherwise.
    Raise it ``from exc`` so that the driver's error stays the cause."""
    for each in driver_errors(exc):
        if each.connection_invalidated:
            orig = each.orig
            return CommandError(
                f"the connection was lost ({type(orig).__name__}: {first_line(orig)});"
                " its open transaction was not committed"
            )
    return None


def driver_errors(exc: BaseException | None) -> Iterator[DBAPIError]:
    """The driver errors among *exc* and its causes (``__cause__``, else
    ``__context__``), outermost first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError):
            yield exc
        exc = exc.__cause__ or exc.__context__
