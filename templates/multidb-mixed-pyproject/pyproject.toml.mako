<%! from alembic_recipes.configuration.config_text import TOML_POST_WRITE_HOOKS, toml_options %>\
# alembic-recipes: Alembic configuration: several databases, sync and async mixed (multidb-mixed)
# The environment's options; alembic.ini keeps the database URL and logging.
[tool.alembic]
${toml_options("multidb-mixed", script_location)}
${TOML_POST_WRITE_HOOKS}\
