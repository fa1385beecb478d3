"""Lead spreadsheets: the columns, reading a CSV upload (encoding, delimiter, header, mapping)
and turning one row into a capture — shared by the import and the export.

The upload is spooled (in memory up to a megabyte, then a temporary file) while its digest and
its UTF-8 validity are worked out chunk by chunk, so a 100 MB file never sits in memory; rows are
then read incrementally by `csv` over a text wrapper of the spool. Encoding: UTF-8 (a byte-order
mark is dropped) when every byte decodes strictly, else Latin-1. Delimiter: `;` when the header
line holds more semicolons than commas, else `,` (or as asked).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any
from uuid import UUID

from domain.errors import InvalidValueError

#: the lead fields a column can hold, in the export's column order
FIELDS = (
    "full_name",
    "email",
    "phone",
    "company",
    "source",
    "estimated_value",
    "stage",
    "assigned_to",
    "external_id",
)
CUSTOM = "custom."
ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "latin-1": "latin-1", "latin1": "latin-1"}
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
BOM = codecs.BOM_UTF8


class Spool:
    """The uploaded bytes, written chunk by chunk: bounded memory, digest and UTF-8 check."""

    def __init__(self, max_bytes: int) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
        self.max_bytes = max_bytes
        self.size = 0
        self.utf8 = True
        self._digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def write(self, chunk: bytes) -> None:
        """Append a chunk; ImportTooLargeError past the limit (what was written is dropped)."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.close()
            raise ImportTooLargeError(f"the file is larger than {self.max_bytes} bytes")
        self._digest.update(chunk)
        # checked in slices: one large chunk never becomes one large decoded string
        for start in range(0, len(chunk) if self.utf8 else 0, 1 << 16):
            try:
                self._decoder.decode(chunk[start : start + (1 << 16)])
            except UnicodeDecodeError:
                self.utf8 = False
                break
        self.file.write(chunk)

    def finish(self) -> None:
        if self.utf8:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.utf8 = False
        self.file.seek(0)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self.file.close()


class ImportTooLargeError(Exception):
    """The file has more bytes or rows than an import takes (answered 413)."""


@dataclass(frozen=True)
class Layout:
    """How a file is read: encoding (the codec), delimiter, header, and which column feeds
    which field."""

    encoding: str
    delimiter: str
    header: tuple[str, ...]
    #: column index → lead field (`full_name`, …, `custom.KEY`)
    fields: dict[int, str]
    ignored: tuple[str, ...] = ()
    column_of: dict[str, str] = field(default_factory=dict)

    @property
    def mapping(self) -> dict[str, str]:
        """The mapping as recorded: column header → field."""
        return {self.header[i]: f for i, f in self.fields.items()}


def choose_encoding(spool: Spool, asked: str | None) -> str:
    if asked is None or asked == "":
        return "utf-8-sig" if spool.utf8 else "latin-1"
    try:
        chosen = ENCODINGS[asked.strip().lower()]
    except KeyError:
        raise InvalidValueError("encoding", "must be utf-8 or latin-1") from None
    if chosen == "utf-8-sig" and not spool.utf8:
        raise InvalidValueError("encoding", "the file is not valid UTF-8 (latin-1 reads it)")
    return chosen


def text_of(spool: Spool, encoding: str) -> io.TextIOWrapper:
    """The spool as text from its start, newlines left to `csv` (quoted line breaks stay)."""
    spool.file.seek(0)
    # errors="strict": a file said to be UTF-8 that is not is a 422, never mojibake
    return io.TextIOWrapper(spool.file, encoding=encoding, newline="")


def choose_delimiter(first_line: str, asked: str | None) -> str:
    if asked is not None and asked != "":
        try:
            return DELIMITERS[asked if asked == "\t" else asked.strip().lower()]
        except KeyError:
            raise InvalidValueError("delimiter", "must be ',', ';' or 'tab'") from None
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _field_name(name: str) -> str | None:
    """The lead field a mapping target or header names, or None."""
    name = name.strip()
    if name.lower() in FIELDS:
        return name.lower()
    if name[: len(CUSTOM)].lower() == CUSTOM and 0 < len(name) - len(CUSTOM) <= 64:
        return CUSTOM + name[len(CUSTOM) :]
    return None


def layout(header: list[str], mapping: str | None, encoding: str, delimiter: str) -> Layout:
    """Which column feeds which field: the given mapping (JSON: header → field), else every
    column named like a field. 422 naming the column for anything that does not fit."""
    names = tuple(h.strip() for h in header)
    if not any(names):
        raise InvalidValueError("file", "the first row must be a header naming the columns")
    chosen: dict[int, str] = {}
    if mapping is None or mapping.strip() == "":
        for i, name in enumerate(names):
            target = _field_name(name)
            if target is not None:
                chosen[i] = target
    else:
        chosen = _given(mapping, names)
    seen: dict[str, str] = {}
    for i, target in chosen.items():
        if target in seen:
            raise InvalidValueError(
                "mapping", f"columns {seen[target]!r} and {names[i]!r} both map to {target}"
            )
        seen[target] = names[i]
    if "full_name" not in seen:
        raise InvalidValueError("mapping", "no column is mapped to full_name")
    ignored = tuple(n for i, n in enumerate(names) if i not in chosen)
    return Layout(encoding, delimiter, names, chosen, ignored, seen)


def _given(mapping: str, names: tuple[str, ...]) -> dict[int, str]:
    try:
        raw = json.loads(mapping)
    except ValueError:
        raise InvalidValueError("mapping", "must be a JSON object: column → field") from None
    if not isinstance(raw, dict) or not all(isinstance(t, str) for t in raw.values()):
        raise InvalidValueError("mapping", "must be a JSON object: column → field")
    chosen: dict[int, str] = {}
    for column, target in raw.items():
        if column.strip() not in names:
            raise InvalidValueError("mapping", f"column {column!r} is not in the file's header")
        name = _field_name(target)
        if name is None:
            raise InvalidValueError(
                "mapping",
                f"column {column!r}: {target!r} is not a lead field "
                f"({', '.join(FIELDS)} or custom.KEY)",
            )
        chosen[names.index(column.strip())] = name
    return chosen


def records(text: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    """The file's records after the header, parsed incrementally."""
    return csv.reader(text, delimiter=delimiter, strict=False)


class RowError(Exception):
    """One row cannot be imported: which column (header name) and why."""

    def __init__(self, column: str | None, message: str, number: int = 0) -> None:
        super().__init__(message)
        self.column = column
        self.message = message
        self.number = number


def unguarded(value: str) -> str:
    """A cell as the export wrote it, without the `'` that keeps spreadsheets from running a
    formula-looking text (so an export reads back exactly)."""
    rest = value[1:]
    if value.startswith("'") and rest.startswith(_FORMULA_START) and not _NUMBER.fullmatch(rest):
        return rest
    return value


@dataclass(frozen=True)
class Row:
    """One record as field values (text; empty cells left out)."""

    number: int
    values: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def custom(self) -> dict[str, Any] | None:
        found = {k[len(CUSTOM) :]: v for k, v in self.values.items() if k.startswith(CUSTOM)}
        return found or None


def row_of(number: int, cells: list[str], lay: Layout) -> Row:
    """The mapped, non-empty values of a record (RowError for cells past the header)."""
    if len(cells) > len(lay.header) and any(c.strip() for c in cells[len(lay.header) :]):
        raise RowError(None, f"has {len(cells)} cells, the header names {len(lay.header)}")
    values: dict[str, str] = {}
    for i, target in lay.fields.items():
        if i < len(cells):
            cell = unguarded(cells[i].strip())
            if "\x00" in cell:
                raise RowError(lay.header[i], "must not contain NUL characters")
            if cell:
                values[target] = cell
    return Row(number, values)


def decimal_of(text: str) -> Decimal:
    """A money cell as written in either convention (`1234.5`, `1.234,50`, `1,234.50`)."""
    cleaned = text.replace(" ", "").replace("\u00a0", "")
    if "," in cleaned and "." in cleaned:
        decimal_mark = "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
        thousands = "." if decimal_mark == "," else ","
        cleaned = cleaned.replace(thousands, "").replace(decimal_mark, ".")
    elif "," in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(text) from None


def uuid_of(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
