"""Alembic's command line run in the test process, as a new interpreter would
see it (:func:`in_process`), and when a test needs the real console script
instead."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import alembic.config
import pytest
from alembic.config import CommandLine, Config
from alembic_recipes.configuration.option_table import option

from .processes import Result, cli_environment


class _ConsoleScript:
    """Whether the running test is marked ``console_script`` (set by the
    autouse fixture below)."""

    on = False


CONSOLE_SCRIPT = _ConsoleScript()


# the options that fork worker processes when above 1 (-x keys; ini/toml keys)
_WORKER_OPTIONS = [option("fleet_workers"), option("server_workers")]


WORKERS_ARG = re.compile(rf"(?:{'|'.join(str(o.x) for o in _WORKER_OPTIONS)})=(?!1$)")


WORKERS_SET = re.compile(
    rf"^(?:{'|'.join(o.key for o in _WORKER_OPTIONS)}) *= *(?!1 *$)\S", re.M
)


# the warning filters of a new interpreter (pytest installs its own per test)
_FRESH_WARNING_FILTERS = list(warnings.filters)


@pytest.fixture(autouse=True)
def _console_script(request: pytest.FixtureRequest) -> Iterator[None]:
    CONSOLE_SCRIPT.on = request.node.get_closest_marker("console_script") is not None
    yield
    CONSOLE_SCRIPT.on = False


class _PrintingConfig(Config):
    """Alembic's ``Config`` printing to the ``sys.stdout`` of its creation
    (the class binds its default ``stdout`` when Alembic is imported)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stdout", sys.stdout)
        super().__init__(*args, **kwargs)


def _exit_code(code: object) -> tuple[int, str]:
    """The process exit status and stderr text ``sys.exit(code)`` gives."""
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code & 0xFF, ""
    return 1, f"{code}\n"


def in_process(root: Path, args: Sequence[str]) -> Result:
    """``alembic *args`` run in *root* by Alembic's command line in this
    process (``CommandLine().main``, what the console script calls), as a new
    interpreter would see it: its own stdout/stderr, exit status, traceback,
    warning filters and logging set-up; the project's modules (``models``,
    revision files) imported afresh and forgotten after; no bytecode written
    (a rewritten file may keep its size and second).  It saves the 0.4 s
    start-up of a new interpreter per run."""
    out, err = io.StringIO(), io.StringIO()
    modules, path = set(sys.modules), sys.path[:]
    logs = _LoggingState()
    logging.root.handlers[:] = []  # a new interpreter's: nothing configured yet
    logging.root.setLevel(logging.WARNING)
    code = 0
    importlib.invalidate_caches()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.chdir(root))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(warnings.catch_warnings())
        warnings.filters[:] = _FRESH_WARNING_FILTERS
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        stack.enter_context(
            mock.patch.object(alembic.config, "Config", _PrintingConfig)
        )
        stack.enter_context(mock.patch.dict(os.environ, cli_environment()))
        stack.enter_context(mock.patch.object(sys, "dont_write_bytecode", True))
        try:
            CommandLine(prog="alembic").main(argv=list(args))
        except SystemExit as exit:
            code, text = _exit_code(exit.code)
            err.write(text)
        except Exception:
            traceback.print_exc(file=err)
            code = 1
        finally:
            sys.path[:] = path
            logs.restore()
            for name in set(sys.modules) - modules:
                file = getattr(sys.modules[name], "__file__", None) or ""
                if file.startswith(str(root.parent)):
                    del sys.modules[name]
    return Result(code, out.getvalue(), err.getvalue())


class _LoggingState:
    """The logging configuration now, to put back after ``fileConfig`` (which
    env.py calls) replaced handlers, levels and disabled existing loggers."""

    def __init__(self) -> None:
        self.handlers = logging.root.handlers[:]
        self.level = logging.root.level
        self.loggers = {
            name: (logger.level, logger.handlers[:], logger.propagate, logger.disabled)
            for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        }

    def restore(self) -> None:
        logging.root.handlers[:] = self.handlers
        logging.root.setLevel(self.level)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            level, handlers, propagate, disabled = self.loggers.get(
                name, (logging.NOTSET, [], True, False)
            )
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.disabled = disabled
