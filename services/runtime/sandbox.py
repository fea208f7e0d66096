"""The Jinja2 sandbox behind `services.runtime.templating`: its environment, limits and filters.

A module of its own so that the runner imports Jinja2 (a tenth of its start-up) only when a step
has a template to render; a workflow of plain parameters never loads it. Everything here is
reached through `templating`, which turns the errors raised here into one-line `TemplateError`s.
"""

from __future__ import annotations

import re
import string as _string
import types
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2 import TemplateError as JinjaError
from jinja2 import filters as _jinja_filters
from jinja2 import runtime as _jinja_runtime
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["JinjaError", "evaluate_expression", "render_bounded"]


class _Undefined(StrictUndefined):
    """Strict undefined whose message names the full path (`steps.count is undefined`)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        path = getattr(self._undefined_obj, "_wr_path", None)
        if path and not self._undefined_hint:
            name = self._undefined_name
            return f"{path}.{name} is undefined" if isinstance(name, str) else f"{path}[{name!r}] is undefined"
        return super()._undefined_message


#: Bounds on what one template operator may build: a template must not exhaust the runner's
#: memory or CPU before the deadline can stop it (templates render on the main thread).
MAX_REPEATED_LENGTH = 1_000_000
MAX_INTEGER_EXPONENT = 1_000
#: The largest integer `*` or `**` may build (about 30,000 digits): a chain like
#: `((10**1000)**1000)**1000` would otherwise hold the CPU, in one uninterruptible C call, past
#: the deadline and SIGTERM.
MAX_INTEGER_BITS = 100_000
#: The widest padding a format spec, `%` conversion, `ljust`/`center`/… or `indent` may ask for.
MAX_WIDTH = MAX_REPEATED_LENGTH
#: The longest string one operation (`~`, `+`, `replace`, `join`, …) or one rendered template may
#: build: more than the largest http response body (10 MiB), far less than the runner's memory.
MAX_STRING_LENGTH = 16 * 1024 * 1024

# Widths and precisions in `{:>N}` format specs and `%N.Ms` conversions; `*` takes it from an argument.
_SPEC_NUMBER = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _refuse(message: str) -> SecurityError:
    return SecurityError(message)


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise _refuse(f"{what} width {width} is above {MAX_WIDTH}")


def _check_length(length: int, what: str) -> None:
    if length > MAX_STRING_LENGTH:
        raise _refuse(f"{what} would build a string of more than {MAX_STRING_LENGTH} characters")


def _check_format_string(text: str) -> None:
    """`str.format` specs: no width or precision above MAX_WIDTH, no width taken from an argument."""
    try:
        fields = list(_string.Formatter().parse(text))
    except ValueError:
        return  # str.format raises its own error
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise _refuse("a format spec may not take its width from an argument")
        for number in _SPEC_NUMBER.findall(spec):
            _check_width(int(number), "format")


def _check_percent_format(text: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*":
                raise _refuse("a '%' conversion may not take its width from an argument")
            if number:
                _check_width(int(number), "'%' padding")


def _replaced_length(text: str, old: str, new: str, count: int = -1) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _joined(separator: str, items: Any) -> tuple[str, list[str]]:
    parts = [str(item) for item in items]
    _check_length(sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0), "join")
    return separator, parts


def _bounded_str_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Check a `str` method that builds a string before it runs; returns NotImplemented if none."""
    text, name = method.__self__, method.__name__
    if name in ("ljust", "rjust", "center", "zfill") and args:
        _check_width(args[0], f"str.{name}")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            _check_length(len(text) + text.count("\t") * tabsize, "str.expandtabs")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_length(_replaced_length(text, args[0], args[1], *args[2:3]), "str.replace")
    elif name == "join" and args:
        separator, parts = _joined(text, args[0])
        return separator.join(parts)
    return NotImplemented


def _filter_center(value: Any, width: int = 80) -> str:
    _check_width(width, "center")
    return str(value).center(width)


def _filter_indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    size = width if isinstance(width, int) else len(str(width))
    text = str(value)
    _check_width(size, "indent")
    _check_length(len(text) + (text.count("\n") + 1) * size, "indent")
    return _jinja_filters.do_indent(text, width, first, blank)


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value))
    return _jinja_filters.do_format(value, *args, **kwargs)


@_jinja_filters.pass_eval_context
def _filter_replace(context: Any, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    _check_length(_replaced_length(text, old, new, -1 if count is None else count), "replace")
    return text.replace(old, new, -1 if count is None else count)


@_jinja_filters.pass_eval_context
def _filter_join(context: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        return _jinja_filters.sync_do_join(context, value, d, attribute)
    separator, parts = _joined(str(d), value)
    return separator.join(parts)


def _filter_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _check_width(linecount, "batch")
    return _jinja_filters.do_batch(value, linecount, fill_with)


def _filter_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_width(slices, "slice")
    return _jinja_filters.sync_do_slice(value, slices, fill_with)


@_jinja_filters.pass_eval_context
def _filter_tojson(context: Any, value: Any, indent: int | None = None) -> Any:
    if isinstance(indent, int) and indent > 64:
        raise _refuse(f"tojson indent {indent} is above 64")
    return _jinja_filters.do_tojson(context, value, indent)


class _CodeGenerator(CodeGenerator):
    """Compiles `a ~ b` to a bounded concatenation (Jinja's own is a plain `"".join`)."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:  # noqa: N802 - Jinja's name
        self.write("environment.concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


def _check_integer_result(operator: str, left: Any, right: Any) -> None:
    """Refuse `*` and `**` on integers whose result would pass MAX_INTEGER_BITS (pure)."""
    if type(left) is not int or type(right) is not int or abs(left) < 2:
        return
    if operator == "**" and right > 0:
        if right > MAX_INTEGER_EXPONENT:
            raise SecurityError(f"'**' exponent above {MAX_INTEGER_EXPONENT}")
        bits = (abs(left).bit_length() - 1) * right
    elif operator == "*":
        bits = abs(left).bit_length() + abs(right).bit_length() - 1
    else:
        return
    if bits > MAX_INTEGER_BITS:
        raise SecurityError(f"'{operator}' would build an integer of more than {MAX_INTEGER_BITS} bits")


class _Environment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (a template cannot change `input`, a step's output or any list
    or dict it builds: no `append`, `update`, `clear`…), with bounds on what operators build."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    if len(sequence) * times > MAX_REPEATED_LENGTH:
                        raise SecurityError(f"'*' would build more than {MAX_REPEATED_LENGTH} items")
        _check_integer_result(operator, left, right)
        if operator == "+" and isinstance(left, str) and isinstance(right, str):
            _check_length(len(left) + len(right), "'+'")
        if operator == "+" and isinstance(left, list | tuple) and isinstance(right, list | tuple):
            if len(left) + len(right) > MAX_REPEATED_LENGTH:
                raise SecurityError(f"'+' would build more than {MAX_REPEATED_LENGTH} items")
        if operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def concat(self, parts: tuple[Any, ...]) -> str:
        texts = [_jinja_runtime.soft_str(part) for part in parts]
        _check_length(sum(map(len, texts)), "'~'")
        return "".join(texts)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(getattr(__obj, "__self__", None), str):
            result = _bounded_str_call(__obj, args, kwargs)
            if result is not NotImplemented:
                return result
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_ENV = _Environment(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
# `lipsum(n, html, min, max)` builds text of any size in one call; workflows have no use for it.
del _ENV.globals["lipsum"]
_ENV.filters.update(
    center=_filter_center, indent=_filter_indent, format=_filter_format, replace=_filter_replace, join=_filter_join,
    batch=_filter_batch, slice=_filter_slice, tojson=_filter_tojson,
)


def evaluate_expression(expression: str, context: Mapping[str, Any]) -> Any:
    """One Jinja expression (no braces), evaluated to its native value; an undefined name raises."""
    value = _ENV.compile_expression(expression, undefined_to_none=False)(**context)
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError with the path
    return value


def render_bounded(text: str, context: Mapping[str, Any]) -> str:
    """Render, stopping once the output passes MAX_STRING_LENGTH (a loop can emit without end)."""
    pieces: list[str] = []
    length = 0
    for piece in _ENV.from_string(text).generate(**context):
        length += len(piece)
        _check_length(length, "the template")
        pieces.append(piece)
    return "".join(pieces)
