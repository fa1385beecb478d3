"""The LeadImport aggregate: who imported which file, and its outcome recorded once."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidValueError
from domain.lead_import import ImportFinishedError, LeadImport
from domain.values import Actor

ACTOR = Actor(kind="user", id="importer")


def started(rows: int = 3) -> LeadImport:
    return LeadImport.start(
        organization_id=uuid4(),
        file_name=" leads.csv ",
        rows=rows,
        mapping={"Nome": "full_name"},
        encoding="latin-1",
        delimiter=";",
        sha256="0" * 64,
        actor=ACTOR,
    )


def test_an_import_records_its_file_mapping_and_actor() -> None:
    lead_import = started()

    (event,) = lead_import.collect_events()
    assert isinstance(event, LeadImport.Started)
    assert (event.file_name, event.rows, event.mapping) == ("leads.csv", 3, {"Nome": "full_name"})
    assert (event.encoding, event.delimiter, event.actor) == ("latin-1", ";", ACTOR)


def test_an_import_finishes_once_with_counts_that_add_up() -> None:
    lead_import = started(rows=3)

    lead_import.finish(created=1, skipped=1, failed=1, actor=ACTOR)

    assert (lead_import.finished, lead_import.created, lead_import.failed) == (True, 1, 1)
    with pytest.raises(ImportFinishedError):
        lead_import.finish(created=1, skipped=1, failed=1, actor=ACTOR)


def test_counts_beyond_the_files_rows_are_refused() -> None:
    lead_import = started(rows=2)

    with pytest.raises(InvalidValueError):
        lead_import.finish(created=2, skipped=1, failed=0, actor=ACTOR)
    with pytest.raises(InvalidValueError):
        lead_import.finish(created=-1, skipped=0, failed=0, actor=ACTOR)
    assert not lead_import.finished
