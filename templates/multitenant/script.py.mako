<%!
    import alembic_recipes.autogenerate.formatting  # registers the post-write hooks in alembic.ini
    import alembic_recipes.lint
    from alembic_recipes.tenants import shared_scope
%>\
<%
    shared = shared_scope(config)
    shared_ups, shared_downs = context.get("shared_upgrades"), context.get("shared_downgrades")
    body = (upgrades or "") + (downgrades or "") + (shared_ups or "") + (shared_downs or "")
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


def upgrade() -> None:
    """Upgrade schema."""
% if upgrades:
    ${code(upgrades)}
% endif


def downgrade() -> None:
    """Downgrade schema."""
% if downgrades:
    ${code(downgrades)}
% endif
% if shared:


def upgrade_shared() -> None:
    """Upgrade the shared scope (${shared}): once, before the tenants."""
% if shared_ups:
    ${code(shared_ups)}
% endif


def downgrade_shared() -> None:
    """Downgrade the shared scope (${shared}): once, after the tenants."""
% if shared_downs:
    ${code(shared_downs)}
% endif
% endif
