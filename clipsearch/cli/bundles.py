"""Options declared once as the fields of a dataclass, and given to a command as one value.

    @command()
    @bundled("how", Presentation)
    def query(text: ..., how: Presentation, ...) -> None: ...

Each field of the dataclass whose type is `Annotated[..., typer.Option(...)]` becomes one option of the command, in
field order and with the field's default; a field whose type is itself such a dataclass adds that one's options
(bundles nest); any other field is not an option and keeps its default. Typer sees the options in the command's
signature, so `--help` lists each with its help text. The command receives the dataclass, built from them, as its
parameter `name`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from typer.models import ParameterInfo

Bundle = TypeVar("Bundle")
Function = TypeVar("Function", bound=Callable[..., Any])


def _is_option(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Annotated and any(
        isinstance(extra, ParameterInfo) for extra in annotation.__metadata__)


def _parameters(bundle: type) -> list[inspect.Parameter]:
    """The options a bundle adds, nested bundles' included."""
    hints = typing.get_type_hints(bundle, include_extras=True)
    parameters = []
    for field in dataclasses.fields(bundle):
        hint = hints[field.name]
        if _is_option(hint):
            parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default,
                                                annotation=hint))
        elif dataclasses.is_dataclass(hint):
            parameters += _parameters(typing.cast(type, hint))
    return parameters


def _build(bundle: type[Bundle], values: dict[str, Any]) -> Bundle:
    """The bundle from the command's arguments, taking (popping) the ones that are its options."""
    hints = typing.get_type_hints(bundle, include_extras=True)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(bundle):
        hint = hints[field.name]
        if _is_option(hint):
            fields[field.name] = values.pop(field.name)
        elif dataclasses.is_dataclass(hint):
            fields[field.name] = _build(typing.cast(type, hint), values)
    return bundle(**fields)


def bundled(name: str, bundle: type[Bundle]) -> Callable[[Function], Function]:
    """Give the command the options of dataclass `bundle`, and it their values as one `bundle` called `name`."""
    added = _parameters(bundle)

    def decorate(function: Function) -> Function:
        signature = inspect.signature(function, eval_str=True)
        own = [parameter for parameter in signature.parameters.values() if parameter.name != name]
        clash = {p.name for p in own} & {p.name for p in added}
        if name not in signature.parameters or clash:
            raise TypeError(f"{function.__name__}() must take `{name}` and none of {bundle.__name__}'s options "
                            f"({', '.join(sorted(clash))})")
        # Typer wants the options (keyword-only here) after the arguments: put them where `name` was, as keywords.
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        at = list(signature.parameters).index(name)
        parameters[at:at] = added

        @functools.wraps(function)
        def command(**arguments: Any) -> Any:
            packed = _build(bundle, arguments)  # takes its options out of `arguments`
            return function(**arguments, **{name: packed})

        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters} | {
            "return": signature.return_annotation}
        return typing.cast(Function, command)

    return decorate
