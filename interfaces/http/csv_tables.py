"""Analytics answers as spreadsheet tables: one CSV table per list of the answer.

Everything here is derived from the answer's msgspec type (`msgspec.inspect`) and its
`msgspec.to_builtins` form, never from figure names, so a renamed or added figure changes the
columns by itself. An answer's **sections**, each a table with a header row:

- every list of objects (`stages`, `groups`, `members`, `rows`, …): one row per item, one column
  per field; a field that is itself an object is spread over columns `field.sub`;
- every top-level object (`totals`): one row;
- `summary`: one row of the top-level plain values (`from`, `to`, `won`, …), if any; a list of
  plain values (the custom report's `measures`) is one cell, its items joined by ", ";
- a list of objects inside the items of a list (a series per group) is a section of its own,
  `<list>.<field>`: one row per (item, element), the item's columns repeated before the
  element's (an element column named like an item column is called `<field>.<name>`).

Cells: null is empty; numbers are written as in the JSON (integers and decimal strings as they
are, floats in the shortest exact form, never in exponent notation); booleans `true`/`false`.
A text cell that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`, tab
or carriage return, and not a number) is prefixed with `'` (OWASP's advice on CSV injection).
RFC 4180: CRLF line ends, quotes only where needed; UTF-8 without a byte-order mark.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import msgspec
import msgspec.inspect as mi

from domain.errors import InvalidValueError

SUMMARY = "summary"
MEDIA_TYPE = "text/csv; header=present"  # Litestar adds "; charset=utf-8"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Column:
    """A header name and the keys leading to its value in one item's builtins."""

    name: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    """One table: the items at `path` of the answer (`()`: the answer itself, as one row).

    `nested` names a list inside each item whose elements are the rows (with `columns` taken
    from the item and `element_columns` from the element). `columns is None`: the items are
    untyped objects (the custom report's rows), their keys are the columns.
    """

    name: str
    path: tuple[str, ...]
    one: bool
    columns: tuple[Column, ...] | None
    nested: str | None = None
    element_columns: tuple[Column, ...] = ()

    def _columns(self, items: list[Any], hint: list[str] | None) -> tuple[Column, ...]:
        if self.columns is not None:
            return self.columns
        names = dict.fromkeys(hint or ())
        for item in items:
            names |= dict.fromkeys(item)
        return tuple(Column(name, (name,)) for name in names)

    def rows(self, data: dict[str, Any], hint: list[str] | None) -> tuple[list[str], list[Any]]:
        """The header and the rows (lists of cells) of this table of `data`."""
        found: Any = data
        for key in self.path:
            found = found.get(key) if isinstance(found, dict) else None
        items: list[Any] = ([] if found is None else [found]) if self.one else list(found or [])
        columns = self._columns(items, hint)
        header = [c.name for c in columns] + [c.name for c in self.element_columns]
        out: list[Any] = []
        for item in items:
            own = [cell(_at(item, c.path)) for c in columns]
            if self.nested is None:
                out.append(own)
                continue
            for element in item.get(self.nested) or []:
                out.append(own + [cell(_at(element, c.path)) for c in self.element_columns])
        return header, out


def _at(item: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        item = item.get(key) if isinstance(item, dict) else None
    return item


def _unwrap(t: mi.Type) -> mi.Type:
    """`X | None` → X (nullability is an empty cell, not a shape)."""
    if isinstance(t, mi.UnionType):
        kinds = [k for k in t.types if not isinstance(k, mi.NoneType)]
        if len(kinds) == 1:
            return kinds[0]
    return t


def _table_item(t: mi.Type) -> mi.Type | None:
    """The item type if `t` is a list of objects (a table), else None."""
    t = _unwrap(t)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        item = _unwrap(t.item_type)
        if isinstance(item, (mi.StructType, mi.DictType, mi.TypedDictType, mi.DataclassType)):
            return item
    return None


def _fields(t: mi.Type) -> tuple[mi.Field, ...]:
    return t.fields if isinstance(t, (mi.StructType, mi.TypedDictType, mi.DataclassType)) else ()


def _columns(t: mi.Type, path: tuple[str, ...] = (), prefix: str = "") -> list[Column]:
    """The plain-value columns of an object type; inner objects spread as `field.sub`."""
    out: list[Column] = []
    for f in _fields(t):
        kind = _unwrap(f.type)
        if _table_item(kind) is not None:
            continue  # a table of its own
        if _fields(kind):
            out += _columns(kind, (*path, f.encode_name), f"{prefix}{f.encode_name}.")
        else:
            out.append(Column(prefix + f.encode_name, (*path, f.encode_name)))
    return out


def _sections(answer: type) -> list[Section]:
    root = mi.type_info(answer)
    out: list[Section] = []
    summary = [
        Column(f.encode_name, (f.encode_name,))
        for f in _fields(root)
        if _table_item(f.type) is None and not _fields(_unwrap(f.type))
    ]
    if summary:
        out.append(Section(SUMMARY, (), one=True, columns=tuple(summary)))
    for f in _fields(root):
        kind, item = _unwrap(f.type), _table_item(f.type)
        name = f.encode_name
        if item is None and _fields(kind):
            out.append(Section(name, (name,), one=True, columns=tuple(_columns(kind))))
            out += _nested(name, kind, one=True)
        elif item is not None:
            typed = bool(_fields(item))
            out.append(Section(name, (name,), False, tuple(_columns(item)) if typed else None))
            out += _nested(name, item, one=False)
    return out


def _nested(name: str, item: mi.Type, one: bool) -> list[Section]:
    """A section per list of objects inside the items (a group's series)."""
    own = tuple(_columns(item))
    taken = {c.name for c in own}
    out = []
    for f in _fields(item):
        element = _table_item(f.type)
        if element is None:
            continue
        columns = tuple(
            Column(c.name if c.name not in taken else f"{f.encode_name}.{c.name}", c.path)
            for c in _columns(element)
        )
        out.append(Section(f"{name}.{f.encode_name}", (name,), one, own, f.encode_name, columns))
    return out


@dataclass(frozen=True)
class Tables:
    """The CSV sections of one answer type, and the one a route answers without `?section=`."""

    report: str
    answer: type
    default: str
    #: columns of sections whose items are untyped objects, named by a field of the answer
    #: holding the column names in order (custom report: rows ← dimensions then measures)
    columns_from: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default not in self.names:
            raise ValueError(f"{self.default!r} is not a section of {self.answer.__name__}")

    @cached_property
    def sections(self) -> dict[str, Section]:
        return {s.name: s for s in _sections(self.answer)}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sections)

    def choose(self, section: str | None) -> str:
        """The section asked for (422 naming the valid ones when it is not one of them)."""
        if section is None or section == "":
            return self.default
        if section not in self.names:
            raise InvalidValueError("section", f"must be one of {', '.join(self.names)}")
        return section

    def render(self, answer: Any, section: str) -> str:
        """One section of `answer` as CSV text: a header row, then one row per item."""
        return self.render_builtins(msgspec.to_builtins(answer), section)

    def render_builtins(self, data: dict[str, Any], section: str) -> str:
        chosen = self.sections[section]
        hint: list[str] | None = None
        if chosen.name in self.columns_from:
            hint = [str(n) for key in self.columns_from[chosen.name] for n in data.get(key) or []]
        header, rows = chosen.rows(data, hint)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()

    def filename(self, answer: Any, section: str) -> str:
        """`analytics-<report>-<section>[_<from>_<to>].csv`, safe in a header."""
        data = msgspec.to_builtins(answer)
        period = [str(data[k]) for k in ("from", "to") if isinstance(data.get(k), str)]
        stem = "_".join([f"analytics-{self.report}-{section}", *period])
        return _UNSAFE_FILENAME.sub("_", stem) + ".csv"

    def describe(self) -> str:
        """The sections and their columns (Markdown, for the OpenAPI document)."""
        lines = []
        for s in self.sections.values():
            if s.columns is None:
                named = " then ".join(f"`{n}`" for n in self.columns_from.get(s.name, ()))
                columns = f"the answer's {named or 'keys'}"
            else:
                columns = ", ".join(f"`{c.name}`" for c in (*s.columns, *s.element_columns))
            default = " (the default)" if s.name == self.default else ""
            rows = "one row" if s.one and s.nested is None else "one row per item"
            lines.append(f"- `{s.name}`{default}: {rows}; columns {columns}")
        return "\n".join(lines)

    def example(self) -> str:
        """The default section's header row (placeholders for columns named by the answer)."""
        empty = {key: [f"<{key}>"] for key in self.columns_from.get(self.default, ())}
        return self.render_builtins(empty, self.default)


def cell(value: Any) -> str:
    """One builtin value (from `msgspec.to_builtins`) as the text of a cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return plain_float(value)
    if isinstance(value, str):
        if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
            return "'" + value
        return value
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(cell(v) for v in value)
    return msgspec.json.encode(value).decode()


def plain_float(value: float) -> str:
    """The shortest text that reads back as `value` (as in the JSON), without an exponent."""
    text = repr(value)
    if "e" in text or "E" in text:
        return format(Decimal(text), "f")
    return text
