"""Fixtures of the domain tests: plain aggregates, and the real event mapper for round trips."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from eventsourcing.persistence import Mapper

from application.store import CrmApplication
from domain.lead import Lead
from domain.pipeline import Pipeline
from interfaces.privacy import LocalKeyWrapper, SubjectKeyring
from tests.domain.builders import capture_lead, default_pipeline


@pytest.fixture
def pipeline() -> Pipeline:
    pipeline = default_pipeline()
    pipeline.collect_events()
    return pipeline


@pytest.fixture
def lead(pipeline: Pipeline) -> Lead:
    return capture_lead(pipeline)


@pytest.fixture(scope="session")
def event_mapper() -> Iterator[Mapper[UUID]]:
    """The production mapper and transcoder (Actor, Decimal, UUID, datetime), on a SQLite app."""
    app = CrmApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"},
        personal_data=SubjectKeyring(None, LocalKeyWrapper("domain-tests-master-key")),
    )
    yield app.mapper
    app.close()
