"""Named families of factories (optimizers, schedules, datasets, ...) whose signatures are their config schemas."""

from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field

from optbench.errors import OptbenchError

# Constrained types for factory signatures; pydantic validates config values against them.
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, lt=1)]  # decay rates, momentum coefficients: [0, 1)
OpenUnit = Annotated[float, Field(gt=0, lt=1)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]

# Every config model: unknown keys refused; a boolean or a string is never a number (lax pydantic reads
# `lr: true` as 1.0 and `lr: "0.01"` as 0.01); every float finite. Integers are accepted as floats.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _list_as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # YAML has no tuples: a start point is a list


def _yaml_friendly(ann: Any) -> Any:
    """A tuple annotation accepts a YAML list too (strict mode alone would want a Python tuple)."""
    if typing.get_origin(ann) is tuple:
        return Annotated[ann, BeforeValidator(_list_as_tuple)]
    return ann


@dataclass(frozen=True)
class Nested:
    """Marks a factory parameter as a section of the same registry, a name or {name: ..., options}: a wrapper's inner rule.

    Validated as a top-level section is, at its own key path; `owned` keys are the enclosing section's (a wrapper's
    lr) and refused inside; `refuse(name)` says why a name cannot be nested here, or None.
    """

    owned: tuple[str, ...] = ()
    refuse: Callable[[str], str | None] = lambda name: None


def _nested_of(fn: Callable) -> dict[str, Nested]:
    hints = typing.get_type_hints(fn, include_extras=True)
    return {k: m for k, h in hints.items() if typing.get_origin(h) is Annotated
            for m in h.__metadata__ if isinstance(m, Nested)}


# Arguments the engine passes itself; never part of a config section.
RESERVED = ("rng", "dtype", "epochs", "shape", "layout")


def format_value(value: Any) -> str:
    """Short repr for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_TAGS = {"int", "float", "str", "bool", "none", "list", "dict", "tuple", "is-instance"}


def _clean_loc(loc) -> list[str]:
    """Key path parts of a pydantic error location, without the union-member and validator tags it adds."""
    out = []
    for p in loc:
        if isinstance(p, int):
            out.append(str(p))
        elif p.isidentifier() and p not in _TYPE_TAGS:
            out.append(p)
    return out


def _hint(error: dict) -> str:
    """Why a strict type refused a value a user may think is fine."""
    value = error.get("input")
    if error["type"] in ("float_type", "int_type") and isinstance(value, bool):
        return " (a boolean is not a number)"
    if error["type"] in ("float_type", "int_type") and isinstance(value, str):
        return f" (a quoted string is not a number: write {value.strip()} without quotes)" if _numeric(value) else ""
    if error["type"] == "int_type" and isinstance(value, float) and value.is_integer():
        return f" (write {int(value)})"
    if error["type"] == "bool_type":
        return " (accepted: true or false)"
    return ""


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def pydantic_message(err: pydantic.ValidationError, prefix: str, data: Any = None) -> str:
    """The first error of a pydantic ValidationError as `path: value is invalid: reason` (unions: reasons joined by 'or')."""
    errors = err.errors()
    first = errors[0]
    loc = _clean_loc(first["loc"])
    path = ".".join([prefix] * bool(prefix) + loc) or "config"
    if first["type"] == "extra_forbid" or first["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if first["type"] == "missing":
        return f"{path}: required key is missing"
    # a union reports one error per member at the same key: say them all
    msgs = []
    for e in errors:
        if _clean_loc(e["loc"]) == loc and e["type"] != "missing":
            m = e["msg"][0].lower() + e["msg"][1:] if e["msg"] else e["msg"]
            if m not in msgs:
                msgs.append(m)
    reason = " or ".join(msgs) + _hint(first)
    if "input" in first:
        return f"{path}: {format_value(first['input'])} is invalid: {reason}"
    return f"{path}: {reason}"


class Registry:
    """name -> factory; `validate` checks a config section against the factory's keyword-only signature.

    With `plugins` (an entry-point group) a name may also be `package.module:factory` or an installed entry
    point (optbench/plugins.py), imported the first time it is named and then kept like a built-in;
    `required` names the keywords such a factory must take. `providers`: modules that register more entries,
    imported at the first lookup (they import the family's own module for its pieces, so it cannot import
    them: they are plugins that ship with the package).
    """

    def __init__(self, family: str, *, providers: tuple[str, ...] = (), plugins: str | None = None,
                 required: tuple[str, ...] = ()):
        self.family = family
        self._providers = providers
        self.plugins = plugins
        self.required = required
        self._items_: dict[str, Callable[..., Any]] = {}
        self._loaded: dict[str, Callable[..., Any]] = {}  # plugins named so far: imported once
        self._models: dict[str, type[pydantic.BaseModel]] = {}

    def register(self, name: str | None = None, *, aliases: tuple[str, ...] = ()):
        """Decorator: add a factory under `name` (default: its function name) and its aliases."""

        def deco(fn):
            for n in (name or fn.__name__, *aliases):
                self._items_[n] = fn
            return fn

        return deco

    @property
    def _items(self) -> dict[str, Callable[..., Any]]:
        while self._providers:
            first, self._providers = self._providers[0], self._providers[1:]
            importlib.import_module(first)
        return self._items_

    def names(self) -> list[str]:
        """The built-in names (installed plugins: `installed()`; neither is imported by listing)."""
        return list(self._items)

    def installed(self) -> list[str]:
        """Names of the installed entry points of this family's plugin group that no built-in shadows."""
        if self.plugins is None:
            return []
        from optbench import plugins

        return [n for n in plugins.installed(self.plugins) if n not in self._items]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def is_plugin(self, name: str) -> bool:
        """True when `name` is not built in (a plugin, loaded or not, or nothing at all)."""
        return name not in self._items

    def get(self, name: str, path: str = "") -> Callable[..., Any]:
        if name in self._items:
            return self._items[name]
        if name in self._loaded:
            return self._loaded[name]
        where = path or "name"
        if self.plugins is not None:
            from optbench import plugins

            try:
                if plugins.is_path(name):
                    obj = plugins.load_path(name)
                else:
                    ep = plugins.installed(self.plugins).get(name)
                    obj = None if ep is None else plugins.load_entry_point(ep)
                if obj is not None:
                    self._loaded[name] = plugins.check_factory(obj, self.required)
                    return self._loaded[name]
            except ValueError as why:
                raise OptbenchError(f"{where}: {format_value(name)} is invalid: {why}") from None
        more = ", ".join(self.installed())
        own = f"; installed plugins: {more}; or package.module:factory" if more else (
            "; or package.module:factory" if self.plugins else "")
        raise OptbenchError(
            f"{path + ': ' if path else ''}unknown {self.family} {format_value(name)} "
            f"(accepted: {', '.join(self.names())}{own})"
        )

    def params(self, name: str) -> dict[str, inspect.Parameter]:
        """The configurable keyword parameters of a factory, in order."""
        sig = inspect.signature(self.get(name))
        return {k: p for k, p in sig.parameters.items() if k not in RESERVED}

    def defaults(self, name: str) -> dict[str, Any]:
        return {k: p.default for k, p in self.params(name).items() if p.default is not inspect.Parameter.empty}

    def summary(self, name: str) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""

    def _model(self, name: str) -> type[pydantic.BaseModel]:
        if name not in self._models:
            fields = {}
            for k, p in self.params(name).items():
                ann = p.annotation if p.annotation is not inspect.Parameter.empty else Any
                if isinstance(ann, str):
                    ann = eval(ann, self.get(name).__globals__)  # noqa: S307 - our own annotations
                default = ... if p.default is inspect.Parameter.empty else p.default
                fields[k] = (_yaml_friendly(ann), default)
            self._models[name] = pydantic.create_model(f"{self.family}_{name}", __config__=STRICT, **fields)
        return self._models[name]

    def validate(self, name: str, options: dict[str, Any], path: str) -> dict[str, Any]:
        """Check `options` against factory `name`; return them completed with defaults, or raise OptbenchError."""
        self.get(name, f"{path}.name" if path else "name")
        accepted = list(self.params(name))
        for key in options:
            if key not in accepted:
                raise OptbenchError(
                    f"{path}.{key}: unknown option for {name} (accepted: {', '.join(accepted) or 'none'})"
                )
        try:
            model = self._model(name).model_validate(options)
        except pydantic.ValidationError as err:
            raise OptbenchError(pydantic_message(err, path)) from None
        # tuples (e.g. a start point) become lists so the resolved config dumps as plain YAML
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in model.model_dump().items()}
        for k, nested in _nested_of(self.get(name)).items():
            out[k] = self._validate_nested(out[k], nested, f"{path}.{k}")
        return out

    def _validate_nested(self, value: Any, nested: Nested, path: str) -> dict[str, Any]:
        """A nested section (a name or a mapping with `name`) validated at `path`, without the keys it does not own."""
        sec = {"name": value} if isinstance(value, str) else dict(value)
        sub = sec.pop("name", None)
        if not isinstance(sub, str):
            raise OptbenchError(f"{path}.name: required key is missing" if sub is None else
                                f"{path}.name: {format_value(sub)} is invalid: expected a string (a name)")
        self.get(sub, f"{path}.name")
        why = nested.refuse(sub)
        if why:
            raise OptbenchError(f"{path}.name: {sub} {why}")
        for key in nested.owned:
            if key in sec:
                raise OptbenchError(f"{path}.{key}: set one level up, not here (the enclosing section's {key} is used)")
        return {"name": sub, **{k: v for k, v in self.validate(sub, sec, path).items() if k not in nested.owned}}

    def build(self, name: str, options: dict[str, Any], **engine_args: Any) -> Any:
        """Call the factory with validated options plus engine-supplied arguments (rng, dtype)."""
        return self.get(name)(**options, **engine_args)
