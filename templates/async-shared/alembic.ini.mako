<%! from alembic_recipes.configuration.config_text import INI_LOGGING, INI_POST_WRITE_HOOKS, ini_options %>\
# Alembic configuration for async (and sync) engines, CLI or in-process (async-shared).

[alembic]
${ini_options("async-shared", script_location)}
${INI_POST_WRITE_HOOKS}${INI_LOGGING}\
