"""Apply the ini's logging without trampling an application's own loggers."""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic.config import Config

__all__ = ["configure_logging", "logger_for"]


def logger_for(module: str) -> logging.Logger:
    """The logger of package module *module* (its ``__name__``), under
    Alembic's: ``alembic_recipes.tenants.driving.fleet`` logs as
    ``alembic.recipes.tenants.driving.fleet``, so the ini's ``[logger_alembic]``
    level and handlers apply, as they do to ``alembic.runtime.migration``."""
    return logging.getLogger(
        f"alembic.recipes.{module.removeprefix('alembic_recipes.')}"
    )


def configure_logging(config: Config) -> None:
    """Apply the ini file's logging sections when nobody configured logging yet.

    From the ``alembic`` CLI the ini's logging applies.  In-process, when the
    application already set up logging (the root logger has handlers), the
    ini is left alone so the app's handlers and loggers stay as they are.
    ``config.attributes["configure_logger"]`` forces it: ``True`` applies the
    ini anyway (existing loggers still stay enabled, unlike the stock
    ``fileConfig(...)``), ``False`` never applies it.
    """
    setting = config.attributes.get("configure_logger")
    if setting is False:
        return
    if setting is None and logging.getLogger().handlers:
        return
    if config.config_file_name is None:
        return
    parser = config.file_config
    if not parser.has_section("loggers") or not parser.has_section("formatters"):
        return
    fileConfig(config.config_file_name, disable_existing_loggers=False)
