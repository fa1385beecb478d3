"""The event store application: saves tenant-tagged events with group commit.

Every save passes `organization_ids` down to the recorder, which writes each stored event's
organization into an indexed column. Concurrent saves from many request threads are grouped
into one insert transaction (group commit): on PostgreSQL every insert takes an exclusive table
lock to keep log order, so fewer, larger transactions are what makes writes scale.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Transcoding

from application.personal_data import (
    CipherHolder,
    PersonalDataMapper,
    SealedPersonalData,
    personal_subject,
)
from application.ports import PersonalDataCipher
from domain.base import TenantAggregate
from domain.errors import ForeignAggregateError, NotFoundError, VersionConflictError
from domain.values import Actor

A = TypeVar("A", bound=TenantAggregate)


class TenantRecorder(Protocol):
    """What the event store's recorders (interfaces/eventstore.py) add to the library's."""

    def organization_of(self, originator_id: UUID) -> UUID | None: ...


Event = DomainEventProtocol[UUID]


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, str | None]:
        return {
            "kind": obj.kind,
            "id": obj.id,
            "ip": obj.ip,
            "user_agent": obj.user_agent,
        }

    def decode(self, data: dict[str, str | None]) -> Actor:
        return Actor(
            kind=str(data["kind"]),
            id=str(data["id"]),
            ip=data.get("ip"),
            user_agent=data.get("user_agent"),
        )


@dataclass
class _Submission:
    events: list[Event]
    organization_ids: dict[UUID, UUID]
    done: bool = False
    position: int = 0
    error: Exception | None = None
    ids: set[UUID] = field(default_factory=set)
    #: new subject keys to write with the events: (organization, subject, wrapped key)
    keys: list[tuple[UUID, UUID, bytes]] = field(default_factory=list)


class CrmApplication(Application[UUID]):
    """One event store for every aggregate of every organization."""

    name = "crm"
    max_group_size = 256
    max_views = 10_000

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        personal_data: PersonalDataCipher | None = None,
    ) -> None:
        # the transcoder is built by Application.__init__ and reads the cipher when it is used
        self.personal_data = CipherHolder()
        self.personal_data.cipher = personal_data
        super().__init__(env)
        self._queue: list[_Submission] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        #: called with the last position after each successful commit (wakes local projectors)
        self.after_commit: Callable[[int], None] | None = None
        self._views: dict[UUID, TenantAggregate] = {}
        self._views_lock = threading.Lock()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ActorAsDict())
        transcoder.register(SealedPersonalData(self.personal_data))

    def construct_mapper(self) -> Mapper[UUID]:
        return PersonalDataMapper(self.construct_transcoder(), self.personal_data)

    def load(self, kind: type[A], aggregate_id: UUID, organization_id: UUID) -> A:
        """Load an aggregate of the caller's organization; another's is 'not found'."""
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(kind.__name__.lower(), aggregate_id) from None
        if isinstance(aggregate, TenantAggregate) and aggregate.organization_id != organization_id:
            raise ForeignAggregateError(
                kind.__name__.lower(), aggregate_id, aggregate.organization_id
            )
        if not isinstance(aggregate, kind):
            raise NotFoundError(kind.__name__.lower(), aggregate_id)
        return aggregate

    def view(self, kind: type[A], aggregate_id: UUID, organization_id: UUID) -> A:
        """A read-only, up-to-date copy of an aggregate, cached in this process.

        For lookups that never change the aggregate (the guard's membership check, a lead
        command reading its pipeline): only events newer than the cached version are read.
        Callers must not mutate the result; updates are copy-on-write.
        """
        cached = self._views.get(aggregate_id)
        fresh: TenantAggregate
        if cached is None:
            fresh = self.load(kind, aggregate_id, organization_id)
        else:
            newer = list(self.events.get(aggregate_id, gt=cached.version))
            if not newer:
                fresh = cached
            else:
                fresh = copy.deepcopy(cached)
                for event in newer:
                    event.mutate(fresh)  # type: ignore[attr-defined]
        if fresh.organization_id != organization_id:
            raise ForeignAggregateError(kind.__name__.lower(), aggregate_id, fresh.organization_id)
        if not isinstance(fresh, kind):
            raise NotFoundError(kind.__name__.lower(), aggregate_id)
        if fresh is not cached:
            with self._views_lock:
                current = self._views.get(aggregate_id)
                if current is None or current.version < fresh.version:
                    self._views[aggregate_id] = fresh
                if len(self._views) > self.max_views:
                    self._views.pop(next(iter(self._views)))
        return fresh

    def organization_of(self, aggregate_id: UUID) -> UUID | None:
        """Which organization an aggregate belongs to, from the log's tenant column (None: no
        such aggregate)."""
        recorder = cast("TenantRecorder", self.recorder)
        return recorder.organization_of(aggregate_id)

    def commit(self, *aggregates: TenantAggregate) -> int:
        """Save the aggregates' new events atomically; return the log position reached.

        Raises VersionConflictError if another writer saved one of them first.
        """
        events: list[Event] = []
        for aggregate in aggregates:
            events.extend(aggregate.collect_events())
        if not events:
            return 0
        orgs = {a.id: a.organization_id for a in aggregates}
        submission = _Submission(events, orgs, ids={e.originator_id for e in events})
        cipher = self.personal_data.cipher
        subjects = {pair for e in events if (pair := personal_subject(e)) is not None}
        if subjects and cipher is not None:
            # keys are made here, in the caller's thread, not under the commit lock, and are
            # written by the same transaction as the events (no commit of their own)
            fresh = {(orgs[e.originator_id], e.originator_id) for e in events}
            fresh = {p for p in fresh if p in subjects and self._is_new(events, p[1])}
            submission.keys = cipher.prepare(subjects, fresh=fresh)
        with self._queue_lock:
            self._queue.append(submission)
        try:
            with self._commit_lock:
                while not submission.done:
                    self._flush(self._take_group())
        finally:
            if submission.keys and cipher is not None:
                made = [(o, s) for o, s, _ in submission.keys]
                stored = submission.done and submission.error is None
                cipher.settle(made, stored=stored)
        if submission.error is not None:
            raise submission.error
        return submission.position

    @staticmethod
    def _is_new(events: Sequence[Event], aggregate_id: UUID) -> bool:
        return any(e.originator_id == aggregate_id and e.originator_version == 1 for e in events)

    def current_version(self, aggregate_id: UUID) -> int:
        rows = self.recorder.select_events(aggregate_id, desc=True, limit=1)
        return rows[0].originator_version if rows else 0

    def _take_group(self) -> list[_Submission]:
        # two submissions for the same aggregate cannot share a transaction: one must fail
        group: list[_Submission] = []
        seen: set[UUID] = set()
        with self._queue_lock:
            while self._queue and len(group) < self.max_group_size:
                head = self._queue[0]
                if head.ids & seen:
                    break
                seen |= head.ids
                group.append(self._queue.pop(0))
        return group

    def _flush(self, group: Sequence[_Submission]) -> None:
        try:
            self._put(group)
        except IntegrityError:
            if len(group) == 1:
                self._fail_with_conflict(group[0])
                return
            for submission in group:  # find who lost the race; the others still commit
                try:
                    self._put([submission])
                except IntegrityError:
                    self._fail_with_conflict(submission)
                except Exception as error:  # noqa: BLE001 - handed to the waiting caller
                    self._finish(submission, error=error)
        except Exception as error:  # noqa: BLE001 - handed to every waiting caller
            for submission in group:
                self._finish(submission, error=error)

    def _put(self, group: Sequence[_Submission]) -> None:
        events = [e for s in group for e in s.events]
        orgs: dict[UUID, UUID] = {}
        for s in group:
            orgs.update(s.organization_ids)
        keys = [k for s in group for k in s.keys]
        recordings = self.events.put(events, organization_ids=orgs, subject_keys=keys)
        last: dict[UUID, int] = {}
        for recording in recordings:
            last[recording.domain_event.originator_id] = recording.notification.id
        for submission in group:
            position = max(last[i] for i in submission.ids)
            self._finish(submission, position=position)
        if self.after_commit is not None and last:
            self.after_commit(max(last.values()))

    def _fail_with_conflict(self, submission: _Submission) -> None:
        # report the aggregate that lost the race, not merely the first one of the save
        firsts: dict[UUID, Event] = {}
        for event in submission.events:
            firsts.setdefault(event.originator_id, event)
        conflicts = [
            (event, self.current_version(aggregate_id)) for aggregate_id, event in firsts.items()
        ]
        event, current = next(
            ((e, v) for e, v in conflicts if v != e.originator_version - 1), conflicts[0]
        )
        error = VersionConflictError(event.originator_id, current, event.originator_version - 1)
        self._finish(submission, error=error)

    @staticmethod
    def _finish(
        submission: _Submission, *, position: int = 0, error: Exception | None = None
    ) -> None:
        submission.position = position
        submission.error = error
        submission.done = True
