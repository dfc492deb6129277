<%!
    import alembic_recipes.autogenerate.formatting  # registers the post-write hooks in alembic.ini
    import alembic_recipes.lint
%>\
<%
    body = (upgrades or "") + (downgrades or "")
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
from alembic_recipes import run_data_downgrade, run_data_upgrade
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


def upgrade() -> None:
    """Schema part, then the data part when data migrations are on."""
    schema_upgrades()
    run_data_upgrade(revision, data_upgrades)


def downgrade() -> None:
    """Data part (only if it ran), then the schema part."""
    run_data_downgrade(revision, data_downgrades)
    schema_downgrades()


def schema_upgrades() -> None:
    """Schema changes; autogenerate writes here."""
% if upgrades:
    ${code(upgrades)}
% endif


def schema_downgrades() -> None:
    """Undo schema_upgrades()."""
% if downgrades:
    ${code(downgrades)}
% endif


def data_upgrades() -> None:
    """Data changes (backfills, seed rows); run with -x data=true.

    Use op.execute(...) or op.get_bind(); they run in the same transaction.
    """


def data_downgrades() -> None:
    """Undo data_upgrades(); runs only if data_upgrades() ran."""
