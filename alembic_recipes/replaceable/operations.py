"""``op.create_<kind>()``, ``op.drop_<kind>()``, ``op.replace_<kind>()`` for
every kind of replaceable object (the cookbook's operation plugins).

``op.replace_view(new)`` drops the declaration ``new.replaces`` names and
creates *new*; ``op.replace_view(new, reverse=True)`` -- in ``downgrade()`` --
drops *new* and re-creates the one it replaced, read from its revision.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from alembic.operations import MigrateOperation, Operations
from alembic.util import CommandError

from .objects import KINDS, ReplaceableObject
from .references import resolve

__all__ = ["CreateObjectOp", "DropObjectOp", "ObjectOp", "ReplaceObjectOp"]


class ObjectOp(MigrateOperation):
    """An operation on one replaceable object (base class)."""

    kind: ClassVar[str] = ""
    verb: ClassVar[str] = ""

    def __init__(
        self,
        target: ReplaceableObject,
        *,
        reverse: bool = False,
        attribute: str | None = None,
    ) -> None:
        self.target = target
        self.reverse_replace = reverse
        self.attribute = attribute or re.sub(r"\W", "_", target.bare_name.lower())
        """The revision's variable holding the declaration (autogenerate)."""

    @classmethod
    def invoke_checked(
        cls, operations: Operations, target: ReplaceableObject, **kw: Any
    ) -> None:
        """Invoke the operation on *target*, which must be of this kind."""
        expected = KINDS[cls.kind]
        if type(target) is not expected:
            got = getattr(target, "kind", type(target).__name__)
            raise CommandError(
                f"op.{cls.verb}_{cls.kind}() takes a {expected.__name__}, got a"
                f" {str(got).replace('_', ' ')}: {target!r}"
            )
        operations.invoke(cls(target, **kw))

    @classmethod
    def run(cls, operations: Operations, target: ReplaceableObject) -> None:
        """``op.create_<kind>(target)`` / ``op.drop_<kind>(target)``."""
        cls.invoke_checked(operations, target)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (f"{self.verb}_{self.kind}", self.target.name)


def _op_class(base: type[ObjectOp], kind: str) -> type[ObjectOp]:
    return type(
        f"{base.__name__[:-2]}{KINDS[kind].__name__}Op", (base,), {"kind": kind}
    )


class CreateObjectOp(ObjectOp):
    verb: ClassVar[str] = "create"

    def reverse(self) -> DropObjectOp:
        return DROP[self.kind](self.target, attribute=self.attribute)


class DropObjectOp(ObjectOp):
    verb: ClassVar[str] = "drop"

    def reverse(self) -> CreateObjectOp:
        return CREATE[self.kind](self.target, attribute=self.attribute)


class ReplaceObjectOp(ObjectOp):
    verb: ClassVar[str] = "replace"

    @classmethod
    def run(
        cls,
        operations: Operations,
        target: ReplaceableObject,
        *,
        reverse: bool = False,
    ) -> None:
        """``op.replace_<kind>(target)``; ``reverse=True`` in ``downgrade()``."""
        cls.invoke_checked(operations, target, reverse=reverse)

    def reverse(self) -> ReplaceObjectOp:
        return REPLACE[self.kind](
            self.target, reverse=not self.reverse_replace, attribute=self.attribute
        )


CREATE: dict[str, type[CreateObjectOp]] = {}
DROP: dict[str, type[DropObjectOp]] = {}
REPLACE: dict[str, type[ReplaceObjectOp]] = {}

for _kind in KINDS:
    for _base, _table in (
        (CreateObjectOp, CREATE),
        (DropObjectOp, DROP),
        (ReplaceObjectOp, REPLACE),
    ):
        _cls = _op_class(_base, _kind)
        Operations.register_operation(f"{_base.verb}_{_kind}", "run")(_cls)
        _table[_kind] = _cls  # type: ignore[assignment]


@Operations.implementation_for(CreateObjectOp)
def _create(operations: Operations, operation: CreateObjectOp) -> None:
    operations.execute(operation.target.create_sql(operations.get_context().dialect))


@Operations.implementation_for(DropObjectOp)
def _drop(operations: Operations, operation: DropObjectOp) -> None:
    operations.execute(operation.target.drop_sql(operations.get_context().dialect))


@Operations.implementation_for(ReplaceObjectOp)
def _replace(operations: Operations, operation: ReplaceObjectOp) -> None:
    context = operations.get_context()
    new = operation.target
    if not new.replaces:
        raise CommandError(
            f"op.replace_{new.kind}({new.bare_name}): the declaration has no"
            " replaces='<revision>.<attribute>' naming the definition it replaces"
        )
    script = getattr(context, "script", None)
    if script is None:
        raise CommandError(
            f"op.replace_{new.kind}() reads replaces={new.replaces!r} from the"
            " revision files: run it through Alembic (no script directory here)"
        )
    _, _, old = resolve(script, new)
    before, after = (new, old) if operation.reverse_replace else (old, new)
    for sql in after.replace_sql(before, context.dialect):
        operations.execute(sql)
