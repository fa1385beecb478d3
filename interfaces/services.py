"""Composition root: builds the event store, read-model engine, projectors and adapters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from application.ai.models import ModelFactory
from application.ai.ports import MessageAnalyzer
from application.conversations.providers import ProviderFactory, SecretBox
from application.ports import Mailer
from application.store import CrmApplication
from interfaces.crypto import secret_box_for
from interfaces.database import eventstore_env, make_engine, wal_checkpoint_for
from interfaces.email import EmailSettings, build_mailer, load_email_settings
from interfaces.live import LocalPublisher, RedisPublisher
from interfaces.live_notifications import live_listener
from interfaces.observability import background_reporter
from interfaces.outbox import OutboxWorker, waking
from interfaces.privacy import keyring_for
from interfaces.redis_circuit import RedisCircuit
from interfaces.revocations import StoredRevocations
from interfaces.security import Argon2Hasher, Tokens
from interfaces.settings import Settings
from interfaces.timers import TimerWorker, jobs_for
from interfaces.users import SqlAccountTokens, SqlUserRepository
from projections.registry import all_projectors
from projections.runner import ProjectionRunner, read_positions

log = logging.getLogger(__name__)


class Services:
    """Everything a request or a command-line action needs, built once per process.

    A plain class on purpose: handlers receive it by dependency injection, and Litestar passes
    opaque objects through untouched (a dataclass would be converted field by field).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        app: CrmApplication,
        users: SqlUserRepository,
        hasher: Argon2Hasher,
        tokens: Tokens,
        runner: ProjectionRunner | None = None,
        live: RedisPublisher | LocalPublisher | None = None,
        account_tokens: SqlAccountTokens | None = None,
        mailer: Mailer | None = None,
        email: EmailSettings | None = None,
        secret_box: SecretBox | None = None,
        providers: ProviderFactory | None = None,
        redis: RedisCircuit | None = None,
        analyzer: MessageAnalyzer | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.app = app
        self.users = users
        self.hasher = hasher
        self.tokens = tokens
        self.runner = runner
        self.live = live or LocalPublisher()
        self.account_tokens = account_tokens or SqlAccountTokens(engine)
        self.email = email or EmailSettings()
        self.mailer: Mailer = mailer or build_mailer(self.email)
        self.secret_box: SecretBox = secret_box or secret_box_for(
            settings.master_key, settings.secret_key
        )
        self._providers = providers
        self._models: ModelFactory | None = None
        #: whether Redis answers, shared by its users here (None: CRM_REDIS_URL unset)
        self.redis = redis
        #: what reads inbound messages (None: no analyzer, the analysis policy is not run)
        self.analyzer = analyzer
        self._started = False
        self.outbox: OutboxWorker | None = None
        self.timers: TimerWorker | None = None

    @property
    def models(self) -> ModelFactory:
        """Language models (built on first use: the offline analyzer's word lists load then)."""
        if self._models is None:
            from interfaces.providers.openai_model import Models

            self._models = Models(
                default_model=self.settings.ai_model, timeout=self.settings.ai_timeout_seconds
            )
        return self._models

    @property
    def providers(self) -> ProviderFactory:
        """Adapters to the providers' APIs (built on first use: most requests need none)."""
        if self._providers is None:
            from interfaces.providers.factory import HttpProviderFactory

            allow = self.settings.provider_private_urls
            self._providers = HttpProviderFactory(allow_private=allow)
        return self._providers

    def start_projections(self) -> None:
        if self.runner is not None and not self._started:
            if self.settings.outbox:  # sends are delivered where their outbox rows are made
                self.start_outbox()
                self.start_timers()
            self.runner.start()
            self._started = True

    def stop_projections(self) -> None:
        if self.runner is not None and self._started:
            self.runner.stop()
            self._started = False
        self.stop_outbox()
        self.stop_timers()

    def start_outbox(self, poll_interval: float = 1.0) -> OutboxWorker:
        """Deliver recorded sends in a background thread, woken by this process's projectors."""
        if self.outbox is None:
            self.outbox = OutboxWorker.for_services(self, poll_interval=poll_interval)
            if self.runner is not None:
                self.runner.after_batch = waking(self.runner.after_batch, self.outbox)
            self.outbox.start()
        return self.outbox

    def stop_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()
            self.outbox = None

    def start_timers(self, poll_interval: float = 1.0) -> TimerWorker:
        """Fire what came due (task reminders, SLA breaches) in a background thread."""
        if self.timers is None:
            self.timers = TimerWorker(jobs_for(self), poll_interval=poll_interval)
            self.timers.start()
        return self.timers

    def stop_timers(self) -> None:
        if self.timers is not None:
            self.timers.stop()
            self.timers = None

    @contextmanager
    def reading(self, organization_id: UUID) -> Iterator[Connection]:
        """A read-only transaction scoped to one organization.

        On PostgreSQL it runs as the role crm_reader with `app.organization_id` set, so the
        row-level-security policies hide every other tenant's rows even from a query that
        forgets its filter. The settings end with the transaction.
        """
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL ROLE crm_reader")
                conn.execute(
                    sa.text("SELECT set_config('app.organization_id', :org, true)"),
                    {"org": str(organization_id)},
                )
            yield conn

    @contextmanager
    def internal(self, organization_id: UUID) -> Iterator[Connection]:
        """A read-only connection on the operational tables (the outbox) that the tenant role
        does not read; every query on it filters by `organization_id` itself."""
        with self.engine.connect() as conn:
            yield conn

    def wait_for(self, names: Iterable[str], position: int, timeout: float | None = None) -> bool:
        """Read-your-writes: wait until the named read models processed `position`."""
        limit = self.settings.read_wait_seconds if timeout is None else timeout
        wanted = list(names)
        if position <= 0:
            return True
        if self.runner is not None and self._started:
            return self.runner.wait_for(wanted, position, limit)
        deadline = time.monotonic() + limit
        delay = 0.002
        while True:  # projectors run in another process: poll their positions
            with self.engine.connect() as conn:
                reached = read_positions(conn)
            if all(reached.get(n, 0) >= position for n in wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        self.stop_projections()
        self.app.close()
        self.engine.dispose()
        self.live.close()
        if self.redis is not None:
            self.redis.close()


def projector_batch_setup(settings: Settings) -> Callable[[Connection], None] | None:
    """Projector batches need not wait for their fsync on PostgreSQL.

    A read model is derived from the log: if a crash loses the last few batch commits, their
    rows and their position are lost together and the batches are simply applied again.
    """
    if not settings.is_postgres:
        return None

    def no_fsync_wait(conn: Connection) -> None:
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

    return no_fsync_wait


_analyzer_missing_logged = False


def build_analyzer() -> MessageAnalyzer | None:
    """The message analyzer: the offline one until a model is configured. None (logged once
    per process) while `application.ai.offline` does not exist yet: messages then wait in the
    analysis queue and are analysed once an analyzer runs."""
    global _analyzer_missing_logged
    try:
        from application.ai.offline import (  # type: ignore[import-not-found,unused-ignore]
            OfflineAnalyzer,
        )
    except ImportError:
        if not _analyzer_missing_logged:
            _analyzer_missing_logged = True
            log.warning("no message analyzer (application.ai.offline): analysis not started")
        return None
    analyzer: MessageAnalyzer = OfflineAnalyzer()
    return analyzer


def build_app(settings: Settings, engine: Engine) -> CrmApplication:
    """The event store, sealing personal data with keys kept in `engine`'s database."""
    return CrmApplication(
        env=eventstore_env(settings),
        personal_data=keyring_for(engine, settings.master_key, settings.secret_key),
    )


def build_services(settings: Settings, *, with_runner: bool | None = None) -> Services:
    email = load_email_settings(database_url=settings.database_url)
    engine = make_engine(settings)
    app = build_app(settings, engine)
    redis = RedisCircuit(settings.redis_url) if settings.redis_url else None
    live = RedisPublisher(redis) if redis is not None else LocalPublisher()
    runner = None
    if settings.run_projections if with_runner is None else with_runner:
        projectors = all_projectors()
        runner = ProjectionRunner(
            engine,
            app.recorder,
            app.mapper,
            projectors,
            before_batch=projector_batch_setup(settings),
            after_batch=live_listener(live, projectors),
            after_round=wal_checkpoint_for(settings, engine),
        )
        runner.on_error = background_reporter("projections")
        wake = runner.wake
        app.after_commit = lambda _position: wake()
    return Services(
        settings=settings,
        engine=engine,
        app=app,
        users=SqlUserRepository(engine),
        hasher=Argon2Hasher(),
        tokens=Tokens(
            settings.secret_key, settings.token_ttl_seconds, StoredRevocations(engine, redis)
        ),
        runner=runner,
        live=live,
        account_tokens=SqlAccountTokens(engine),
        mailer=build_mailer(email),
        email=email,
        redis=redis,
        analyzer=build_analyzer(),
    )
