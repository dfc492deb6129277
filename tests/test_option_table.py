"""The option table (``configuration.option_table``) against what reads and
writes options: the settings classes, the templates' config files, the
configuration reference, the error type -- in-process, no server needed."""

from __future__ import annotations

import logging
import re
import tomllib
from configparser import ConfigParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.util import CommandError
from alembic_recipes import DatabaseSettings, DataSettings, Settings, TenantSettings
from alembic_recipes.autogenerate.formatting import HOOK_NAME as FORMAT_HOOK
from alembic_recipes.configuration.config_text import (
    INI_LOGGING,
    ini_options,
    reference_markdown,
    toml_options,
)
from alembic_recipes.configuration.filters import all_names
from alembic_recipes.configuration.option_table import (
    OPTIONS,
    TEMPLATE_NAMES,
    option,
    options_for,
)
from alembic_recipes.configuration.options import (
    InvalidOption,
    InvalidOptionType,
    parse_bool,
)
from alembic_recipes.configuration.reader import OptionReader
from alembic_recipes.lint import HOOK_NAME as LINT_HOOK
from alembic_recipes.templates import template_path
from mako.template import Template

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "async-shared": Settings,
    "data-flag": DataSettings,
    "multidb-mixed": DatabaseSettings,
    "multitenant": TenantSettings,
}


def _render(template: str, name: str) -> str:
    path = template_path(template) / name
    return Template(filename=str(path)).render(script_location="/p/migrations")


def _config(tmp_path: Path, template: str) -> Config:
    ini = tmp_path / "alembic.ini"
    ini.write_text(_render(template, "alembic.ini.mako"))
    return Config(str(ini))


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_option_read_is_a_row_of_the_table(tmp_path: Path, template: str) -> None:
    """Each key the settings class reads has its row, with that -x key."""
    reader = OptionReader(_config(tmp_path, template), template)
    SETTINGS[template].read(reader)
    rows = {row.key: row for row in options_for(template)}
    by_x = {row.x: row for row in rows.values() if row.x}
    for x_key, ini_key in sorted(reader.asked, key=str):
        row = rows.get(ini_key or "") or by_x[x_key or ""]
        assert row.x == x_key, f"{ini_key}: read as -x {x_key}, table says {row.x}"


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_generated_ini_and_toml_hold_every_row_with_its_default(
    template: str,
) -> None:
    ini = ConfigParser(interpolation=None)
    ini.read_string(_render(template, "alembic.ini.mako"))
    toml = tomllib.loads(_render(f"{template}-pyproject", "pyproject.toml.mako"))
    section = toml["tool"]["alembic"]
    for row in options_for(template):
        default = row.default_for(template)
        if not row.in_ini or default is None or row.key == "script_location":
            continue
        assert ini.get("alembic", row.key) == default
        if not row.ini_only:
            value = section[row.key]
            if row.kind == "list":
                value = ", ".join(value)
            elif row.kind == "bool":
                value = str(value).lower()
            assert str(value) == default, row.key


def test_blocks_render_each_kind_for_toml() -> None:
    block = toml_options("multitenant", "migrations")
    assert 'tenants = ["acme", "globex"]' in block
    assert "continue_on_error = false" in block
    assert 'migration_lock_timeout = "300s"' in block
    assert 'create_tenants = "known"' in block
    assert "sqlalchemy.url =" not in block  # stays in alembic.ini
    assert ini_options("multitenant", only="sqlalchemy.url") == (
        "sqlalchemy.url = sqlite:///%(here)s/tenants/{tenant}.db\n"
    )
    assert INI_LOGGING.startswith("# Logging configuration")


def test_configuration_reference_in_docs_is_current() -> None:
    """docs/reference/configuration.md is `python -m alembic_recipes options`:
    every option of ours once, under its own heading, in whole sentences; the
    post-write hook types; Alembic's own options named."""
    page = ROOT / "docs" / "reference" / "configuration.md"
    text = page.read_text()
    assert text == reference_markdown()
    for template in TEMPLATE_NAMES:
        if template != "async-shared":  # reads only the common options
            assert f"\n## {template}\n" in text
    assert "`-x data=…`" in text
    headings = re.findall(r"^### `([^`]+)`$", text, re.MULTILINE)
    ours = [opt for opt in OPTIONS if not opt.alembic]
    assert sorted(headings) == sorted(
        [opt.key if opt.in_ini else str(opt.x) for opt in ours]
        + [FORMAT_HOOK, LINT_HOOK]
    )
    for opt in ours:
        assert re.fullmatch(r"[A-Z`].*[.)]", opt.reference, re.DOTALL), opt.key
    for opt in OPTIONS:
        if opt.alembic:
            assert f"`{opt.key}`" in text


@pytest.mark.driver
def test_near_miss_ini_key_is_named_even_when_reading_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelled tenant_strategy leaves the default (database), whose URL
    check fails: the warning still names the key meant."""
    config = _config(tmp_path, "multitenant")
    text = config.config_file_name and Path(config.config_file_name).read_text()
    assert text
    Path(str(config.config_file_name)).write_text(
        text.replace("tenant_strategy = database", "tenant_stratgy = schema").replace(
            "sqlite:///%(here)s/tenants/{tenant}.db", "postgresql://h/app"
        )
    )
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(CommandError, match=r"\{tenant\}"),
    ):
        TenantSettings.load(Config(str(config.config_file_name)))
    assert "did you mean tenant_strategy?" in caplog.text


def test_one_error_type_for_bad_values() -> None:
    with pytest.raises(InvalidOption) as info:
        parse_bool("perhaps", source="-x data")
    assert str(info.value) == (
        "invalid value 'perhaps' for -x data: expected one of"
        " true/yes/on/false/no/off/1/0 (case-insensitive)"
    )
    wrong_type = InvalidOptionType("config.attributes['connection'] must be ...")
    assert isinstance(wrong_type, CommandError) and isinstance(wrong_type, TypeError)
    assert option("migration_lock_timeout").accepted in str(
        InvalidOption.expected("-1", "x", option("migration_lock_timeout").accepted)
    )


def test_all_names_includes_only_what_every_filter_does() -> None:
    def not_b(name: str | None, type_: str, parents: object) -> bool:
        return name != "b"

    def not_c(name: str | None, type_: str, parents: object) -> bool:
        return name != "c"

    include = all_names(not_b, None, not_c)
    assert [n for n in "abcd" if include(n, "table", {})] == ["a", "d"]
    assert all_names()("x", "table", {})


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_configure_options_carry_what_the_package_needs(
    tmp_path: Path, template: str
) -> None:
    """The context.configure() arguments env.py takes from the package, with
    a user's include_name combined with ours (never replacing it)."""
    config = _config(tmp_path, template)
    settings = SETTINGS[template].load(config)

    def no_secrets(name: str | None, type_: str, parents: object) -> bool:
        return name != "secrets"

    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        if isinstance(settings, TenantSettings):
            tenant = settings.tenant("acme")
            options = tenant.configure_options(connection, include_name=no_secrets)
            assert options["version_table_schema"] is None  # database strategy
            assert options["upgrade_token"] == "upgrades"
            assert not options["include_name"]("alembic_version", "table", {})
        elif isinstance(settings, DatabaseSettings):
            database = settings.databases[0]
            options = database.configure_options(connection, include_name=no_secrets)
            assert options["upgrade_token"] == f"{database.name}_upgrades"
        else:
            options = settings.configure_options(connection, include_name=no_secrets)
        if isinstance(settings, DataSettings):
            assert not options["include_name"]("alembic_data_version", "table", {})
        assert "transactional_ddl" in options
        assert not options["include_name"]("secrets", "table", {})
        assert options["include_name"]("users", "table", {})
    engine.dispose()


def test_readers_take_the_rows_key_only() -> None:
    """Each option is defined once, in its row: the package's reads name the
    row's key and nothing else (its -x form, bounds and default derive)."""
    import ast

    methods = {"value", "flag", "flag_or_word", "text", "duration", "whole"}
    for path in (ROOT / "alembic_recipes").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "reader"
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert not node.keywords, f"{where}: a row's key only"
                (arg,) = node.args
                if isinstance(arg, ast.Constant):
                    assert option(arg.value).key == arg.value, where
