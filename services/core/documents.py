"""Reading user files (workflows, credentials): YAML or JSON into plain JSON values, safely.

A file a user hands to wfctl is hostile until read: PyYAML's safe loader still builds values
JSON cannot hold (timestamps, `!!binary`, `!!set`, date keys, `.nan`), expands aliases without
limit (a 500-byte "billion laughs" file becomes gigabytes), recurses once per nesting level, and
converts integers of any length. The loader here accepts only what JSON can say, refuses
aliases beyond a small budget and nesting beyond `MAX_DEPTH`, and every refusal is one line
naming the file and the line (docs/workflows.md, "Input limits").
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import yaml

from services.core.errors import UserError
from services.core.inputs import MAX_DEPTH, InputError, check_json

#: A file is read whole; its size is bounded before parsing.
MAX_FILE_BYTES = 1024 * 1024
#: Aliases (`*name`) allowed in one document: enough to share a block or two, too few to bomb.
MAX_ALIASES = 32
#: Longest integer literal accepted (2**63 has 19 digits; YAML allows `_` separators and signs).
MAX_INTEGER_CHARS = 32


class _Refused(yaml.YAMLError):
    """A YAML construct that is not a plain JSON value, at a line of the file."""

    def __init__(self, message: str, node: yaml.Node | None = None) -> None:
        line = f" (line {node.start_mark.line + 1})" if node is not None and node.start_mark else ""
        super().__init__(f"{message}{line}")
        self.message = f"{message}{line}"


#: Plain mapping keys YAML 1.1 reads as booleans; as keys they are words (`on: [failed]`).
_WORD_KEYS = frozenset({"on", "off", "yes", "no", "y", "n"})


class PlainJsonLoader(yaml.SafeLoader):
    """A safe loader limited to JSON values, with budgets on aliases and nesting.

    A bare `on` (or `off`, `yes`, `no`) mapping key stays a string: `notify: [{on: [failed]}]`
    and a step retry's `on: [http_5xx]` mean the key "on", not YAML 1.1's `True` (values keep
    YAML 1.1's reading, so `enabled: yes` is still true).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (*name)", None)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                line = f" (line {event.start_mark.line + 1})" if event.start_mark else ""
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep{line}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.tag == "tag:yaml.org,2002:bool"
                and key_node.style is None
                and key_node.value.lower() in _WORD_KEYS
            ):
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep=deep)


def _refuse(what: str) -> Any:
    def construct(loader: PlainJsonLoader, node: yaml.Node) -> Any:
        raise _Refused(f"{what} is not a JSON value; quote it to make it a string", node)

    return construct


def _construct_int(loader: PlainJsonLoader, node: yaml.ScalarNode) -> int:
    if len(str(node.value)) > MAX_INTEGER_CHARS:
        raise _Refused("an integer too large (integers must fit in 64 bits)", node)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _construct_float(loader: PlainJsonLoader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise _Refused(f"{node.value!r} is not a finite number", node)
    return value


PlainJsonLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
PlainJsonLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
PlainJsonLoader.add_constructor("tag:yaml.org,2002:timestamp", _refuse("a date or timestamp"))
PlainJsonLoader.add_constructor("tag:yaml.org,2002:binary", _refuse("!!binary"))
PlainJsonLoader.add_constructor("tag:yaml.org,2002:set", _refuse("!!set"))
PlainJsonLoader.add_constructor("tag:yaml.org,2002:omap", _refuse("!!omap"))
PlainJsonLoader.add_constructor("tag:yaml.org,2002:pairs", _refuse("!!pairs"))
PlainJsonLoader.add_constructor(None, _refuse("a value with an unknown tag"))


def decode(data: bytes, source: str) -> str:
    """The file's text: UTF-8 only, bounded; a binary file is refused in one line."""
    if len(data) > MAX_FILE_BYTES:
        raise UserError(source, f"is {len(data)} bytes; files are limited to {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(source, f"is not UTF-8 text (invalid byte at offset {error.start})") from None
    if "\x00" in text:
        raise UserError(source, "is not a text file (it contains NUL bytes)")
    return text


def read_file(path: Path) -> str:
    """Read a user's file (`-` is stdin) as text, every failure one line naming the file."""
    if str(path) == "-":
        return decode(sys.stdin.buffer.read(MAX_FILE_BYTES + 1), "stdin")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError("file", f"cannot read {path}: {exc.strerror or exc}") from None
    return decode(data, str(path))


def _parse(text: str | bytes, source: str, single: bool) -> list[Any]:
    """The documents of `text` through the plain-JSON loader; every refusal one line naming `source`."""
    if isinstance(text, bytes):
        text = decode(text, source)
    elif len(text) > MAX_FILE_BYTES:
        raise UserError(source, f"is {len(text)} characters; files are limited to {MAX_FILE_BYTES // 1024} KiB")
    try:
        loader = PlainJsonLoader(text)
        try:
            if single:
                return [loader.get_single_data()]
            documents = []
            while loader.check_data():
                documents.append(loader.get_data())
            return documents
        finally:
            loader.dispose()
    except _Refused as refused:
        raise UserError(source, refused.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({' '.join(str(problem).split())})" if problem else ""
        raise UserError(source, f"not valid YAML or JSON{where}{detail}") from None
    except RecursionError:
        raise UserError(source, f"nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:  # PyYAML's own: e.g. `"\U99999999"` reaches chr()
        raise UserError(source, f"not valid YAML or JSON ({' '.join(str(exc).split())[:120]})") from None


def _checked(document: Any, source: str, max_bytes: int | None) -> Any:
    try:
        return check_json(document, "", max_bytes)
    except InputError as error:
        where = f"{error.field} " if error.field else ""
        raise UserError(source, f"{where}{error.message}") from None


def load_document(text: str | bytes, source: str = "document", max_bytes: int | None = None) -> Any:
    """Parse YAML (a superset of JSON) into a plain JSON value; every refusal is one line.

    `max_bytes` bounds the value's size as compact JSON (measured without expanding it whole).
    """
    [document] = _parse(text, source, single=True)
    return _checked(document, source, max_bytes)


def load_documents(text: str | bytes, source: str = "document", max_bytes: int | None = None) -> list[Any]:
    """Every document of a multi-document YAML file (`---` between them), each checked as
    `load_document` checks one; the alias budget covers the whole file."""
    documents = _parse(text, source, single=False)
    return [_checked(document, f"{source}[{index}]", max_bytes) for index, document in enumerate(documents)]
