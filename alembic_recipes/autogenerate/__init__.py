"""Autogenerate recipes and the post-write formatter.

``recipes`` holds the cookbook's autogenerate recipes behind
:func:`~alembic_recipes.autogenerate_hooks`; ``formatting`` registers the
post-write hooks that ``ruff format`` revision files.
"""
