"""One way to find every extension: a name registered in code, an installed entry point, or ``module:attr``.

The paper's promise (§3.6) is that new behaviour is added without editing coordination code.
Each extension point (aggregators, samplers, trainers, plug-ins) is one :class:`Registry`; a
config names an extension in one of three ways, tried in this order:

1. a name registered in code (``register_aggregator("mine", factory)``), built-ins included;
2. a ``module:attr`` path, resolved with :func:`pkgutil.resolve_name` (the module is imported then);
3. the name of an entry point in the registry's group (``fscope.aggregators``, ``fscope.plugins`` ...),
   so an installed package extends fscope with no code change and no import in the config.

Resolution happens when the course is built, not while the config is parsed, so a user's module
is imported before its names are looked up. Every failure is a :class:`ConfigError` naming the
config key, on one line.
"""

from __future__ import annotations

import pkgutil
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from fscore.errors import ConfigError

T = TypeVar("T")

#: the entry-point groups, one per extension point
GROUPS = {"aggregator": "fscope.aggregators", "sampler": "fscope.samplers", "trainer": "fscope.trainers",
          "plugin": "fscope.plugins", "dataset": "fscope.datasets", "task": "fscope.tasks",
          "personalization": "fscope.personalizations"}


def is_path(name: str) -> bool:
    """Whether ``name`` is a ``module:attr`` path rather than a registered name."""
    return ":" in name


def resolve_path(path: str, key: str) -> Any:
    """``module:attr`` (or a bare ``module``), imported now; ``key`` names the config key on failure."""
    try:
        return pkgutil.resolve_name(path)
    except Exception as exc:  # noqa: BLE001 - any failure of a user module's import is reported, one line
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{key}: cannot import {path!r} ({type(exc).__name__}: {text})") from None


class Registry(Generic[T]):
    """Named factories of one extension point, plus its entry-point group and ``module:attr`` paths."""

    def __init__(self, kind: str, builtins: Mapping[str, Callable[..., T] | str] | None = None) -> None:
        self.kind = kind
        self.group = GROUPS[kind]
        #: a factory, or the ``module:attr`` path of one (imported when first named, so built-ins cost nothing)
        self._factories: dict[str, Callable[..., T] | str] = dict(builtins or {})

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        self._factories[name] = factory

    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The installed entry points of this registry's group (read afresh: sys.path may have changed)."""
        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Registered names and installed entry points (without importing them)."""
        return sorted({*self._factories, *self.entry_points()})

    def __contains__(self, name: str) -> bool:
        return name in self._factories or is_path(name) or name in self.entry_points()

    def resolve(self, name: str, key: str) -> Callable[..., T]:
        """The factory ``name`` stands for; ``key`` is the config key that named it (``aggregator.name``)."""
        if name in self._factories:
            factory = self._factories[name]
            return resolve_path(factory, key) if isinstance(factory, str) else factory
        if is_path(name):
            return resolve_path(name, key)
        entry = self.entry_points().get(name)
        if entry is None:
            raise ConfigError(f"{key}: unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'} "
                              "(or give module:attr)")
        try:
            return entry.load()
        except Exception as exc:  # noqa: BLE001 - any failure of a third party's import is reported, one line
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(f"{key}: entry point {name!r} of group {self.group} ({entry.value}) failed to import: "
                              f"{type(exc).__name__}: {text}") from None

    def build(self, name: str, options: Mapping[str, Any], *, key: str, options_key: str,
              args: tuple[Any, ...] = (), implicit: Mapping[str, Any] | None = None) -> T:
        """Resolve ``name`` and call its factory with ``args`` and the options, naming the key of a bad option.

        ``options_key`` is where the options live in the config (``aggregator``, ``plugins[0].options``);
        ``implicit`` are keywords the course passes besides the user's options (a sampler's ``groups``).
        """
        return self.construct(self.resolve(name, key), name, options, options_key=options_key, args=args,
                              implicit=implicit)

    def construct(self, factory: Callable[..., T], name: str, options: Mapping[str, Any], *, options_key: str,
                  args: tuple[Any, ...] = (), implicit: Mapping[str, Any] | None = None) -> T:
        """Call a resolved ``factory``; a bad option becomes a ConfigError naming ``options_key``."""
        try:
            return factory(*args, **{**(implicit or {}), **options})
        except ValidationError as exc:
            raise ConfigError(option_error(options_key, name, exc)) from None
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc) and options:
                raise ConfigError(f"{options_key}: {self.kind} {name} takes no options "
                                  f"(got {', '.join(sorted(options))})") from None
            raise ConfigError(_named(options_key, name, exc)) from None
        except ValueError as exc:  # a check across options names its key: "byzantine: ..."
            raise ConfigError(_named(options_key, name, exc)) from None


def _named(options_key: str, name: str, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    named = re.match(r"^(\w+): ", text)
    where = f"{options_key}.{named.group(1)}" if named else options_key
    return f"{where}: {name}: {text[named.end():] if named else text}"


def option_error(options_key: str, name: str, exc: ValidationError) -> str:
    """The first option pydantic refused, as ``options_key.option: why`` on one line."""
    err = exc.errors()[0]
    option = ".".join(str(p) for p in err["loc"])
    across = re.match(r"^(?:Value error, )?(\w+): (.*)$", err["msg"]) if not option else None
    if across:  # a check across options (a model validator) names its option first: "noise_multiplier: ..."
        return f"{options_key}.{across.group(1)}: {across.group(2)}"
    where = f"{options_key}.{option}" if option else options_key
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"{where}: {name} has no option {option!r}"
    got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
    return f"{where}: {err['msg']}{got}"
