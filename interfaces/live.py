"""Live change notifications: after each projected batch, tell each organization what changed.

With CRM_REDIS_URL the message is PUBLISHed on `org:{organization_id}:changes` (any process can
subscribe); on the embedded default, and while Redis does not answer, it fans out to this
process's subscribers (a subscriber that may have missed messages is told to refetch). A message
names the projection, its position and up to MAX_CHANGES summaries of the organization's events
in the batch — never another organization's — so a client knows what to fetch again without
polling.

A member's notifications go on their own channel, `org:{organization_id}:user:{user_id}:
notifications` (interfaces/live_notifications.py); a stream opened by a person subscribes to
its organization's channel and to that one, never to another member's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

import redis.asyncio as aredis

from interfaces.redis_circuit import ERRORS, RedisCircuit

log = logging.getLogger("crm.live")

#: summaries per message; a bigger batch sets `truncated` (the client then refetches broadly)
MAX_CHANGES = 100


class Change(Protocol):
    """What a message says of one event (the runner's Envelope)."""

    @property
    def position(self) -> int: ...

    @property
    def type_name(self) -> str: ...

    @property
    def event(self) -> Any: ...


def channel(organization_id: UUID) -> str:
    return f"org:{organization_id}:changes"


def user_channel(organization_id: UUID, user_id: UUID) -> str:
    """A member's own channel: their notifications, for them only."""
    return f"org:{organization_id}:user:{user_id}:notifications"


def _name(key: UUID | str) -> str:
    # an organization id stands for its change channel
    return channel(key) if isinstance(key, UUID) else key


def message(
    projection: str, position: int, organization_id: UUID, changes: Sequence[Change] = ()
) -> str:
    return json.dumps(
        {
            "organization_id": str(organization_id),
            "projection": projection,
            "position": position,
            "changes": [
                {
                    "event": c.type_name,
                    "aggregate_id": str(c.event.originator_id),
                    "position": c.position,
                }
                for c in changes[:MAX_CHANGES]
            ],
            "truncated": len(changes) > MAX_CHANGES,
        }
    )


def _messages(
    projection: str,
    organizations: Mapping[UUID, int],
    changes: Mapping[UUID, Sequence[Change]] | None,
) -> list[tuple[str, str]]:
    found = changes or {}
    return [
        (channel(org), message(projection, position, org, found.get(org, ())))
        for org, position in organizations.items()
    ]


class RedisPublisher:
    """PUBLISHes on Redis while it answers; while it does not (see RedisCircuit), fans out to
    this process's own subscribers instead, which listen to both (RedisSubscription)."""

    def __init__(self, circuit: RedisCircuit) -> None:
        self.circuit = circuit
        self.url = circuit.url
        self.local = LocalPublisher()

    def __call__(
        self,
        projection: str,
        organizations: Mapping[UUID, int],
        changes: Mapping[UUID, Sequence[Change]] | None = None,
    ) -> None:
        self._publish(_messages(projection, organizations, changes))

    def send(self, organization_id: UUID, text: str) -> None:
        self._publish([(channel(organization_id), text)])

    def send_to(self, name: str, text: str) -> None:
        """Publish on one channel by name (a member's own)."""
        self._publish([(name, text)])

    def _publish(self, messages: list[tuple[str, str]]) -> None:
        if not messages:  # an empty pipeline asks nothing: it must not count as Redis answering
            return
        if self.circuit.allows():
            try:
                pipe = self.circuit.client().pipeline(transaction=False)
                for name, text in messages:
                    pipe.publish(name, text)
                pipe.execute()
            except ERRORS as error:
                self.circuit.failed(error)
            else:
                self.circuit.succeeded()
                return
        for name, text in messages:  # degraded: this process's subscribers only
            self.local.send_to(name, text)

    def ping(self) -> bool:
        return self.circuit.ping() is not None

    def close(self) -> None:
        pass  # the circuit's client belongs to the Services that made it


class Sink(Protocol):
    """Receives an organization's messages; `put` is called from the projector's thread."""

    def put(self, item: str) -> None: ...


class LocalPublisher:
    """In-process fan-out for one server process (no Redis), by channel name (an organization
    id stands for its change channel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Sink]] = defaultdict(list)

    def subscribe(self, key: UUID | str, inbox: Sink) -> Sink:
        with self._lock:
            self._subscribers[_name(key)].append(inbox)
        return inbox

    def unsubscribe(self, key: UUID | str, inbox: Sink) -> None:
        with self._lock:
            inboxes = self._subscribers.get(_name(key))
            if inboxes is not None and inbox in inboxes:
                inboxes.remove(inbox)
                if not inboxes:
                    del self._subscribers[_name(key)]

    def subscribers(self, key: UUID | str) -> int:
        with self._lock:
            return len(self._subscribers.get(_name(key), ()))

    def __call__(
        self,
        projection: str,
        organizations: Mapping[UUID, int],
        changes: Mapping[UUID, Sequence[Change]] | None = None,
    ) -> None:
        with self._lock:
            wanted = {
                channel(org): list(self._subscribers.get(channel(org), ())) for org in organizations
            }
        if not any(wanted.values()):
            return  # nobody listens: skip building the messages
        for name, text in _messages(projection, organizations, changes):
            for inbox in wanted[name]:
                try:
                    inbox.put(text)
                except Exception:  # one gone subscriber must not starve the others
                    log.exception("could not hand a change to a subscriber")

    def send(self, organization_id: UUID, text: str) -> None:
        self.send_to(channel(organization_id), text)

    def send_to(self, name: str, text: str) -> None:
        with self._lock:
            inboxes = list(self._subscribers.get(name, ()))
        for inbox in inboxes:
            try:
                inbox.put(text)
            except Exception:
                log.exception("could not hand a change to a subscriber")

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


class AnalyticsCoalescer:
    """Announces analytics as one `analytics.changed` per organization at most every `interval`
    seconds (a dashboard refetches once, not per batch); every other projection passes through.

    The first change after a quiet interval goes out at once; changes during the interval are
    folded into one message sent when it ends, carrying the latest position.
    """

    projection = "analytics"

    def __init__(self, publisher: RedisPublisher | LocalPublisher, interval: float = 1.0) -> None:
        self.publisher = publisher
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[UUID, float] = {}
        self._pending: dict[UUID, int] = {}

    def __call__(
        self,
        projection: str,
        organizations: Mapping[UUID, int],
        changes: Mapping[UUID, Sequence[Change]] | None = None,
    ) -> None:
        if projection != self.projection:
            self.publisher(projection, organizations, changes)
            return
        now = time.monotonic()
        due: list[tuple[UUID, int]] = []
        with self._lock:
            for org, position in organizations.items():
                if org in self._pending:
                    self._pending[org] = max(self._pending[org], position)
                elif now - self._last.get(org, -self.interval) >= self.interval:
                    self._last[org] = now
                    due.append((org, position))
                else:
                    self._pending[org] = position
                    wait = self.interval - (now - self._last[org])
                    timer = threading.Timer(wait, self._flush, args=(org,))
                    timer.daemon = True
                    timer.start()
        for org, position in due:
            self._send(org, position)

    def _flush(self, org: UUID) -> None:
        with self._lock:
            position = self._pending.pop(org, None)
            self._last[org] = time.monotonic()
        if position is not None:
            self._send(org, position)

    def _send(self, org: UUID, position: int) -> None:
        # the shape of every change message, so one client loop reads them all
        text = json.dumps(
            {
                "type": "analytics.changed",
                "organization_id": str(org),
                "projection": self.projection,
                "position": position,
                "changes": [],
                "truncated": False,
            }
        )
        try:
            self.publisher.send(org, text)
        except Exception:  # live updates never break the projector
            log.exception("could not announce analytics organization_id=%s", org)


class LoopInbox:
    """A Sink that hands messages to an asyncio queue of the loop it was made on.

    Thread-safe and never blocks the projector: a subscriber too slow to keep `maxsize`
    messages is marked `overflowed` (it should refetch) instead of holding up the others.
    """

    def __init__(self, maxsize: int = 1000) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.overflowed = False
        #: messages may have been lost upstream (Redis went away): the subscriber should refetch
        self.missed = False

    def put(self, item: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            self.loop.call_soon_threadsafe(self._deliver, item)

    def interrupt(self) -> None:
        """Mark messages as missed and wake the reader (on the inbox's loop)."""
        self.missed = True
        self._deliver(WAKE)

    def _deliver(self, item: str) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


#: a queue item that only wakes the reader (messages are JSON, never empty)
WAKE = ""


class Subscription(Protocol):
    """One organization's messages, read on the event loop."""

    async def next(self, timeout: float) -> str | None:
        """The next message, or None when `timeout` seconds passed without one."""

    async def close(self) -> None: ...


class LocalSubscription:
    """An organization's changes, and the caller's own channels (`extra`), in-process."""

    def __init__(
        self, publisher: LocalPublisher, organization_id: UUID, extra: Sequence[str] = ()
    ) -> None:
        self.publisher = publisher
        self.organization_id = organization_id
        self.channels = [channel(organization_id), *extra]
        self.inbox = LoopInbox()
        for name in self.channels:
            publisher.subscribe(name, self.inbox)

    async def next(self, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.inbox.overflowed:
                raise SubscriberTooSlowError(self.organization_id)
            if self.inbox.missed:
                raise MessagesMissedError(self.organization_id)
            try:
                item = await asyncio.wait_for(self.inbox.queue.get(), deadline - loop.time())
            except TimeoutError:
                return None
            if item != WAKE:
                return item

    async def close(self) -> None:
        for name in self.channels:
            self.publisher.unsubscribe(name, self.inbox)


class RedisSubscription:
    """Every process's messages through Redis pub/sub, and this process's own fan-out while
    Redis does not answer (RedisPublisher falls back to it).

    A reader task owns the pub/sub connection (made on the running loop: redis.asyncio needs
    that) and reconnects when Redis answers again; messages other processes published meanwhile
    are lost, so the subscriber is then told to refetch (MessagesMissedError).
    """

    def __init__(
        self, publisher: RedisPublisher, organization_id: UUID, extra: Sequence[str] = ()
    ) -> None:
        self.circuit = publisher.circuit
        self.channels = [channel(organization_id), *extra]
        self.local = LocalSubscription(publisher.local, organization_id, extra)
        self._task: asyncio.Task[None] | None = None

    async def open(self, timeout: float = 2.0) -> None:
        """Subscribe and wait for Redis to confirm, so no change published after this is lost;
        when Redis does not answer, start with this process's fan-out and keep trying."""
        connection = await self._connect(timeout)
        self._task = asyncio.create_task(self._read(connection))

    async def next(self, timeout: float) -> str | None:
        return await self.local.next(timeout)

    async def close(self) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            await self.local.close()

    async def _connect(self, timeout: float) -> _PubSub | None:
        if not self.circuit.allows():
            return None
        connection = _PubSub(self.circuit.async_client())
        try:
            await connection.subscribe(self.channels, timeout)
        except ERRORS as error:
            self.circuit.failed(error)
            await connection.close()
            return None
        self.circuit.succeeded()
        return connection

    async def _read(self, connection: _PubSub | None) -> None:
        outages = self.circuit.outages
        try:
            while True:
                if connection is None:
                    await asyncio.sleep(self.circuit.backoff / 2)
                    connection = await self._connect(2.0)
                    if connection is not None:  # others' messages of the meantime are lost
                        outages = self.circuit.outages
                        self.local.inbox.interrupt()
                    continue
                try:
                    text = await connection.next(1.0)
                except ERRORS as error:
                    self.circuit.failed(error)
                    await connection.close()
                    connection = None
                    continue
                if text is not None:
                    self.local.inbox.put(text)
                elif outages != self.circuit.outages and self.circuit.up:
                    # the connection lived through an outage another Redis user of this
                    # process saw (a stalled server): messages of the meantime went elsewhere
                    outages = self.circuit.outages
                    self.local.inbox.interrupt()
        finally:  # cancelled by close(): asyncio lets this one await run
            if connection is not None:
                await connection.close()


class _PubSub:
    """One pub/sub connection subscribed to one channel."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub()

    async def subscribe(self, names: Sequence[str], timeout: float) -> None:
        await self.pubsub.subscribe(*names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = len(names)
        while (left := deadline - loop.time()) > 0:
            found = await self.pubsub.get_message(timeout=left)
            if found is not None and found.get("type") == "subscribe":
                waiting -= 1
                if waiting == 0:
                    return
        raise TimeoutError(f"Redis did not confirm the subscription to {', '.join(names)}")

    async def next(self, timeout: float) -> str | None:
        found = await self.pubsub.get_message(timeout=timeout)
        if found is not None and found.get("type") == "message":
            data = found["data"]
            return data.decode() if isinstance(data, bytes) else str(data)
        return None

    async def close(self) -> None:
        with contextlib.suppress(*ERRORS):
            try:
                await self.pubsub.aclose()
            finally:
                await self.client.aclose()


class SubscriberTooSlowError(Exception):
    """The subscriber fell too far behind; it should reconnect and refetch."""


class MessagesMissedError(SubscriberTooSlowError):
    """Redis was away: messages of other processes may have been missed; refetch."""


async def subscribe(
    live: RedisPublisher | LocalPublisher, organization_id: UUID, user_id: UUID | None = None
) -> RedisSubscription | LocalSubscription:
    """One organization's changes, and with `user_id` that member's own notifications, from
    wherever this process's publisher sends them."""
    extra = [] if user_id is None else [user_channel(organization_id, user_id)]
    if isinstance(live, RedisPublisher):
        subscription = RedisSubscription(live, organization_id, extra)
        try:
            await subscription.open()
        except BaseException:
            await subscription.close()
            raise
        return subscription
    return LocalSubscription(live, organization_id, extra)
