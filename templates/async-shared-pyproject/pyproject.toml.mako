<%! from alembic_recipes.configuration.config_text import TOML_POST_WRITE_HOOKS, toml_options %>\
# alembic-recipes: Alembic configuration for async (and sync) engines, CLI or in-process (async-shared)
# The environment's options; alembic.ini keeps the database URL and logging.
[tool.alembic]
${toml_options("async-shared", script_location)}
${TOML_POST_WRITE_HOOKS}\
