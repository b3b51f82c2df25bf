"""Completeness at construction: an extension that misses a required method fails when it is built.

ABCs raise TypeError; the paper's completeness checking asks for NotImplementedError, naming every
missing method, before any course starts rather than in its tenth round.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RequiredMethods:
    """Base for extension points; subclasses list the methods an implementation must override."""

    required: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        missing = [name for name in cls._all_required() if _is_unimplemented(cls, name)]
        if missing:
            raise NotImplementedError(f"{cls.__name__} must implement {', '.join(missing)}")
        return super().__new__(cls)

    @classmethod
    def _all_required(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("required", ()):
                if name not in names:
                    names.append(name)
        return names


def _is_unimplemented(cls: type, name: str) -> bool:
    attr = getattr(cls, name, None)
    return attr is None or getattr(attr, "__fscope_abstract__", False)


def abstract(func: Any) -> Any:
    """Mark a base-class method as a placeholder that implementations must override."""
    func.__fscope_abstract__ = True
    return func
