"""Running env.py: under the lock, from the CLI or an application, and what it prints.

``execution`` runs env.py's migrate function on the environment's connection;
``commands`` are Alembic's commands as awaitables for async applications;
``output`` is what commands print over several tenants or databases.
"""
