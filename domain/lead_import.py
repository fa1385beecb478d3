"""The LeadImport aggregate: one spreadsheet of leads brought in by someone, start to finish.

It records who imported which file (its name, digest, size in rows and the column mapping)
and what came of it; the leads themselves are captured as Lead aggregates of their own. An
import finishes once: a second `finish` is refused, so its counts are never rewritten.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, RuleViolationError
from domain.values import Actor


class ImportFinishedError(RuleViolationError):
    """An import's outcome is recorded once."""


class LeadImport(TenantAggregate):
    """A CSV file of leads imported into one organization."""

    file_name: str
    rows: int
    mapping: dict[str, str]
    finished: bool
    created: int
    skipped: int
    failed: int

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        file_name: str
        rows: int
        mapping: dict[str, str]
        #: how the file was read: its text encoding, delimiter and SHA-256 of its bytes
        encoding: str
        delimiter: str
        sha256: str

        def apply(self, lead_import: LeadImport) -> None:
            lead_import.organization_id = self.organization_id
            lead_import.file_name = self.file_name
            lead_import.rows = self.rows
            lead_import.mapping = dict(self.mapping)
            lead_import.finished = False
            lead_import.created = lead_import.skipped = lead_import.failed = 0

    class Finished(TenantAggregate.Event):
        created: int
        skipped: int
        failed: int

        def apply(self, lead_import: LeadImport) -> None:
            lead_import.finished = True
            lead_import.created = self.created
            lead_import.skipped = self.skipped
            lead_import.failed = self.failed

    @classmethod
    def start(
        cls,
        *,
        organization_id: UUID,
        file_name: str,
        rows: int,
        mapping: dict[str, str],
        encoding: str,
        delimiter: str,
        sha256: str,
        actor: Actor,
        id: UUID | None = None,
    ) -> LeadImport:
        if rows < 0:
            raise InvalidValueError("rows", "must not be negative")
        return cls._create(
            cls.Started,
            id=id or uuid4(),
            organization_id=organization_id,
            actor=actor,
            file_name=v.text("file_name", file_name, max_length=255),
            rows=rows,
            mapping=dict(mapping),
            encoding=encoding,
            delimiter=delimiter,
            sha256=sha256,
        )

    def finish(self, *, created: int, skipped: int, failed: int, actor: Actor) -> None:
        if self.finished:
            raise ImportFinishedError(f"import {self.id} is already finished")
        if min(created, skipped, failed) < 0 or created + skipped + failed > self.rows:
            raise InvalidValueError("rows", "the counts do not add up to the file's rows")
        self.trigger_event(
            self.Finished, created=created, skipped=skipped, failed=failed, actor=actor
        )
