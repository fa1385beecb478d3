"""GET /health: the database, Redis and the projectors' lag, cheaply (one trivial query, the
positions, the log head, one PING with a short timeout).

`healthy`; `degraded` (200) while Redis is configured but does not answer, or a projector is
more than LAG_DEGRADED events behind the log; `unhealthy` (503) when the database does not
answer — the only state in which nothing can be served.
"""

from __future__ import annotations

import importlib.metadata
import time
from datetime import UTC, datetime

import msgspec
import sqlalchemy as sa
from litestar import Response, get
from litestar.datastructures import State

from interfaces.operations import projector_lags
from interfaces.services import Services

SERVICE = "loved-crm"
#: events a projector may be behind the log before the service reads as degraded
LAG_DEGRADED = 1000


def _version() -> str:
    try:
        return importlib.metadata.version(SERVICE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()


class Dependency(msgspec.Struct, frozen=True):
    #: healthy, unhealthy, or not_configured (Redis without CRM_REDIS_URL)
    status: str
    type: str
    response_time_ms: float | None = None


class Dependencies(msgspec.Struct, frozen=True):
    database: Dependency
    redis: Dependency


class ProjectorHealth(msgspec.Struct, frozen=True):
    position: int
    lag: int


class Health(msgspec.Struct, frozen=True):
    status: str
    service: str
    version: str
    timestamp: datetime
    dependencies: Dependencies
    #: the event log's last position; each projector's position and lag behind it
    #: the event log's head (null when the database does not answer)
    log_position: int | None
    projectors: dict[str, ProjectorHealth]
    #: why the status is not healthy, in words (empty when healthy)
    issues: list[str]
    response_time_ms: float


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


@get("/health", sync_to_thread=True, operation_id="health", tags=["health"])
def health(state: State) -> Response[Health]:
    """Whether the service can serve: 200 `healthy` or `degraded`, 503 `unhealthy`."""
    services: Services = state.services
    started = time.perf_counter()
    database_type = "postgresql" if services.settings.is_postgres else "sqlite"
    try:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        database = Dependency("healthy", database_type, _ms(started))
        head, lags = projector_lags(services.engine, services.app)
    except Exception as error:  # noqa: BLE001 - reported as unhealthy, not raised
        database = Dependency("unhealthy", database_type, _ms(started))
        issue = f"database unreachable ({type(error).__name__})"
        return Response(
            _health("unhealthy", database, _redis(services), None, {}, [issue], started),
            status_code=503,
        )
    redis = _redis(services)
    projectors = {lag.name: ProjectorHealth(lag.position, lag.lag) for lag in lags}
    issues = [] if redis.status != "unhealthy" else ["redis unreachable"]
    issues += [
        f"projector {name} is {p.lag} events behind"
        for name, p in projectors.items()
        if p.lag > LAG_DEGRADED
    ]
    status = "degraded" if issues else "healthy"
    return Response(_health(status, database, redis, head, projectors, issues, started))


def _redis(services: Services) -> Dependency:
    if services.redis is None:
        return Dependency("not_configured", "redis")
    took = services.redis.ping()
    if took is None:
        return Dependency("unhealthy", "redis")
    return Dependency("healthy", "redis", round(took, 2))


def _health(
    status: str,
    database: Dependency,
    redis: Dependency,
    head: int | None,
    projectors: dict[str, ProjectorHealth],
    issues: list[str],
    started: float,
) -> Health:
    return Health(
        status=status,
        service=SERVICE,
        version=VERSION,
        timestamp=datetime.now(UTC),
        dependencies=Dependencies(database, redis),
        log_position=head,
        projectors=projectors,
        issues=issues,
        response_time_ms=_ms(started),
    )
