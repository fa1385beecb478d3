"""Live change notifications: after each projected batch, tell each organization what changed.

With CRM_REDIS_URL the message is PUBLISHed on `org:{organization_id}:changes` (any process can
subscribe); on the embedded default it fans out to in-process subscribers.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import defaultdict
from uuid import UUID

import redis

log = logging.getLogger("crm.live")


def channel(organization_id: UUID) -> str:
    return f"org:{organization_id}:changes"


def message(projection: str, position: int, organization_id: UUID) -> str:
    return json.dumps(
        {"organization_id": str(organization_id), "projection": projection, "position": position}
    )


class RedisPublisher:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def __call__(self, projection: str, organizations: dict[UUID, int]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for org, position in organizations.items():
            pipe.publish(channel(org), message(projection, position, org))
        pipe.execute()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()


class LocalPublisher:
    """In-process fan-out for one server process (no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[UUID, list[queue.SimpleQueue[str]]] = defaultdict(list)

    def subscribe(self, organization_id: UUID) -> queue.SimpleQueue[str]:
        inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
        with self._lock:
            self._subscribers[organization_id].append(inbox)
        return inbox

    def unsubscribe(self, organization_id: UUID, inbox: queue.SimpleQueue[str]) -> None:
        with self._lock:
            if inbox in self._subscribers.get(organization_id, []):
                self._subscribers[organization_id].remove(inbox)

    def __call__(self, projection: str, organizations: dict[UUID, int]) -> None:
        with self._lock:
            targets = [
                (org, position, list(self._subscribers.get(org, [])))
                for org, position in organizations.items()
            ]
        for org, position, inboxes in targets:
            for inbox in inboxes:
                inbox.put(message(projection, position, org))

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass
