"""Apply the ini's logging without trampling an application's own loggers."""

from __future__ import annotations

from logging.config import fileConfig

from alembic.config import Config

__all__ = ["configure_logging"]


def configure_logging(config: Config) -> None:
    """Apply the ini file's ``[loggers]`` setup, unless the caller opted out.

    Unlike the stock ``fileConfig(config.config_file_name)``, loggers that
    already exist (uvicorn's, your application's) stay enabled.  In-process
    callers that manage logging themselves set
    ``config.attributes["configure_logger"] = False`` to skip the ini entirely.
    """
    if not config.attributes.get("configure_logger", True):
        return
    if config.config_file_name is None:
        return
    parser = config.file_config
    if not parser.has_section("loggers") or not parser.has_section("formatters"):
        return
    fileConfig(config.config_file_name, disable_existing_loggers=False)
