"""Liveness and readiness: database reachable, projector positions and lag."""

from __future__ import annotations

import msgspec
import sqlalchemy as sa
from litestar import Response, get
from litestar.datastructures import State

from interfaces.services import Services
from projections.runner import read_positions


class ProjectionHealth(msgspec.Struct, frozen=True):
    name: str
    position: int
    lag: int


class Health(msgspec.Struct, frozen=True):
    status: str
    database: str
    redis: str
    log_position: int
    projections: list[ProjectionHealth]


@get("/health", sync_to_thread=True, operation_id="health", tags=["health"])
def health(state: State) -> Response[Health]:
    services: Services = state.services
    try:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            positions = read_positions(conn)
        head = services.app.recorder.max_notification_id() or 0
    except Exception:  # noqa: BLE001 - reported as unhealthy, not raised
        return Response(Health("unavailable", "unreachable", "unknown", 0, []), status_code=503)
    redis = "not configured"
    if services.settings.redis_url:
        redis = "ok" if services.live.ping() else "unreachable"
    projections = [
        ProjectionHealth(name, pos, max(0, head - pos)) for name, pos in sorted(positions.items())
    ]
    status = "ok" if redis != "unreachable" else "degraded"
    return Response(Health(status, "ok", redis, head, projections))
