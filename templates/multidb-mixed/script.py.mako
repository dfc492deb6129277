<%!
    import alembic_recipes.autogenerate.formatting  # registers the post-write hooks in alembic.ini
    import alembic_recipes.lint
    from alembic_recipes.multidb import database_names
%>\
<%
    names = database_names(config)
    ops_of = {name: (context.get(f"{name}_upgrades"), context.get(f"{name}_downgrades")) for name in names}
    body = "".join((up or "") + (down or "") for up, down in ops_of.values())
    # as in stock Alembic: op and sa are there for the code you write; ruff
    # is told they are meant to be there until that code uses them
    op_sa_imports = [line + ("" if used else "  # noqa: F401") for used, line in (
        ("sa." in body, "import sqlalchemy as sa"),
        ("op." in body, "from alembic import op"),
    )]

    def code(ops):
        # a docstring is body enough: no `pass` (ruff PIE790)
        return (ops or "").replace("\n    pass\n", "\n")
%>\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""

from collections.abc import Sequence

% for line in op_sa_imports:
${line}
% endfor
% if imports:
${imports}
% endif

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
% if context.get("replaceable"):


# replaceable objects (alembic_recipes.replaceable) this revision declares
${context.get("replaceable")}
% endif


def upgrade(engine_name: str) -> None:
    """Upgrade the database named engine_name (see databases in alembic.ini)."""
    globals()[f"upgrade_{engine_name}"]()


def downgrade(engine_name: str) -> None:
    """Downgrade the database named engine_name."""
    globals()[f"downgrade_{engine_name}"]()
% for name in names:


def upgrade_${name}() -> None:
    """Upgrade the ${name} database."""
% if ops_of[name][0]:
    ${code(ops_of[name][0])}
% endif


def downgrade_${name}() -> None:
    """Downgrade the ${name} database."""
% if ops_of[name][1]:
    ${code(ops_of[name][1])}
% endif
% endfor
