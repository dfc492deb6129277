"""``replaces="<revision>.<attribute>"``: resolved, and checked when revisions load.

Every revision's module-level declarations are checked before any migration
runs -- the revision exists, declares that attribute, it is the same kind of
object, and it comes before the revision replacing it -- so a typo is an
error at upgrade time, not a surprise at downgrade time.
"""

from __future__ import annotations

from collections.abc import Iterator

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

from ..configuration.settings import register_revision_check
from .objects import ReplaceableObject

__all__ = ["check_references", "declarations", "resolve"]


def declarations(module: object) -> Iterator[tuple[str, ReplaceableObject]]:
    """``(attribute, object)`` for each replaceable object *module* declares."""
    for attribute, value in vars(module).items():
        if isinstance(value, ReplaceableObject):
            yield attribute, value


def resolve(
    script: ScriptDirectory, obj: ReplaceableObject, *, within: str | None = None
) -> tuple[Script, str, ReplaceableObject]:
    """The revision, attribute and declaration *obj* replaces.

    *within*: the revision declaring *obj*; the one it names must come before.
    """
    ref = obj.replaces or ""
    where = f"revision {within}: " if within else ""
    what = f"{where}{obj.kind.replace('_', ' ')} {obj.name!r} replaces={ref!r}"
    rev_id, dot, attribute = ref.partition(".")
    if not dot or not rev_id or not attribute.isidentifier():
        raise CommandError(
            f"{what}: expected '<revision>.<attribute>', e.g. replaces="
            f"'28af9800143f.{obj.bare_name}'"
        )
    revision = _revision(script, rev_id, what)
    found = dict(declarations(revision.module))
    old = found.get(attribute)
    if old is None:
        declared = ", ".join(sorted(found)) or "nothing replaceable"
        raise CommandError(
            f"{what}: revision {revision.revision} has no {attribute!r} (it declares"
            f" {declared})"
        )
    if old.kind != obj.kind:
        raise CommandError(
            f"{what}: {revision.revision}.{attribute} is a"
            f" {old.kind.replace('_', ' ')}, not a {obj.kind.replace('_', ' ')}"
        )
    if within is not None:
        _check_before(script, revision, within, what)
    return revision, attribute, old


def _check_before(
    script: ScriptDirectory, revision: Script, within: str, what: str
) -> None:
    """*revision* (the one replaced) comes before revision *within*."""
    if revision.revision == within:
        raise CommandError(f"{what}: an object cannot replace one of its own revision")
    ancestors = {r.revision for r in script.iterate_revisions(within, "base")}
    if revision.revision not in ancestors:
        raise CommandError(
            f"{what}: revision {revision.revision} does not come before"
            f" {within}, so its definition is not the one being replaced"
        )


def _revision(script: ScriptDirectory, rev_id: str, what: str) -> Script:
    """Revision *rev_id*, or one line naming what refers to it."""
    try:
        revision = script.get_revision(rev_id)
    except CommandError as exc:
        raise CommandError(f"{what}: {exc}") from exc
    if revision is None:
        raise CommandError(f"{what}: no revision {rev_id!r}")
    return revision


def check_references(script: ScriptDirectory) -> None:
    """Resolve every ``replaces=`` of every revision now (see the module doc).

    Registered with
    :func:`alembic_recipes.configuration.settings.register_revision_check`
    when this package is imported (by a revision declaring an object), so a
    command runs it once its revision files are loaded, before any step.
    """
    for revision in script.walk_revisions():
        for _, obj in declarations(revision.module):
            if obj.replaces:
                resolve(script, obj, within=revision.revision)


register_revision_check(check_references)
