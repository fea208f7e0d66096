"""Templates in a step's `with` and `if` (docs/workflows.md): Jinja2, sandboxed, strict about undefined names.

Why these choices:
- The sandbox keeps a workflow author from reaching Python internals through a template.
- Strict undefined turns a typo (`steps.cuont.output`) into a step failure naming the variable,
  instead of silently rendering an empty string into a URL or a request body.
- A string that is exactly one expression (`"{{ steps.count.output }}"`) keeps the value's JSON
  type (the int 3, not "3"), so numbers, lists and objects flow between steps unchanged.
- Dotted access prefers a mapping's key over a method of the same name (`output.items` is the
  field `items`, not `dict.items`), which is what JSON data needs.

The sandbox itself (environment, limits, bounded filters) is `services.runtime.sandbox`, imported
the first time a string holds a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
FALSE_STRINGS = frozenset({"", "false", "0", "no", "off", "none", "null"})
TRUE_STRINGS = frozenset({"true", "1", "yes", "on"})


class TemplateError(Exception):
    """A template could not be rendered; `field` is where (e.g. `with.url`), message is one line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PathDict(dict[str, Any]):
    """A mapping that knows its path in the context, so undefined errors can name it."""

    __slots__ = ("_wr_path",)

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        super().__init__(data)
        self._wr_path = path


def with_paths(value: Any, path: str) -> Any:
    """Wrap every mapping inside `value` as a PathDict labelled with its dotted path."""
    if isinstance(value, Mapping):
        return PathDict({k: with_paths(v, f"{path}.{k}") for k, v in value.items()}, path)
    if isinstance(value, list):
        return [with_paths(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def has_template(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def to_plain(value: Any) -> Any:
    """JSON-shaped data: mappings to dicts, tuples to lists, anything else exotic to str."""
    if value is None or isinstance(value, bool | int | float | str):
        return value if type(value) in (bool, int, float, str, type(None)) else str(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return str(value)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _sandbox() -> ModuleType:
    """The Jinja2 sandbox, imported on first use: plain parameters never need it."""
    from services.runtime import sandbox

    return sandbox


def evaluate(expression: str, context: Mapping[str, Any], field: str) -> Any:
    """Evaluate one Jinja expression (no braces) to its native value."""
    sandbox = _sandbox()
    try:
        return to_plain(sandbox.evaluate_expression(expression, context))
    except sandbox.JinjaError as error:
        raise TemplateError(field, _one_line(error.message or type(error).__name__)) from None
    except Exception as error:  # e.g. TypeError from `1 + "a"` inside the expression
        raise TemplateError(field, _one_line(f"{type(error).__name__}: {error}")) from None


def render_string(text: str, context: Mapping[str, Any], field: str) -> Any:
    """Render one string: a lone `{{ expr }}` keeps its type, anything else becomes a string."""
    if not has_template(text):
        return text
    single = _SINGLE_EXPRESSION.match(text)
    if single:
        return evaluate(single.group("expr"), context, field)
    sandbox = _sandbox()
    try:
        return _render_bounded(text, context)
    except sandbox.JinjaError as error:
        raise TemplateError(field, _one_line(error.message or type(error).__name__)) from None
    except Exception as error:
        raise TemplateError(field, _one_line(f"{type(error).__name__}: {error}")) from None


def _render_bounded(text: str, context: Mapping[str, Any]) -> str:
    return _sandbox().render_bounded(text, context)


def render_value(value: Any, context: Mapping[str, Any], field: str = "with") -> Any:
    """Render every string inside `value` (keys too), keeping its structure."""
    if isinstance(value, str):
        return render_string(value, context, field)
    if isinstance(value, Mapping):
        rendered: dict[str, Any] = {}
        for key, item in value.items():
            name = render_string(key, context, f"{field}.{key}") if isinstance(key, str) else key
            rendered[str(name)] = render_value(item, context, f"{field}.{key}")
        return rendered
    if isinstance(value, list):
        return [render_value(item, context, f"{field}[{i}]") for i, item in enumerate(value)]
    return value


def truthy(value: Any) -> bool:
    """`if` truthiness: Python's, plus the strings "false", "0", "no", "off", "none", "null"."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_STRINGS
    return bool(value)


def evaluate_condition(condition: str | bool, context: Mapping[str, Any], field: str = "if") -> bool:
    """A step's `if`: a boolean, a template, or a bare expression (`steps.count.output > 0`)."""
    if isinstance(condition, bool):
        return condition
    text = condition.strip()
    word = text.lower()
    if word in FALSE_STRINGS or word in TRUE_STRINGS:  # `if: ""`, `if: "no"`: words, not names to look up
        return word in TRUE_STRINGS
    if has_template(text):
        return truthy(render_string(text, context, field))
    return truthy(evaluate(text, context, field))
