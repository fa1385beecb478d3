"""The `crm` command: migrate, seed the demo, serve, and operate the projections."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
import msgspec
import sqlalchemy as sa

from interfaces.cli_audit import audit
from interfaces.cli_mail import mail
from interfaces.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        click.echo(f"configuration error: {error}", err=True)
        raise SystemExit(2) from None


@contextmanager
def _database_errors() -> Iterator[None]:
    """An unreachable or unmigrated database is an operator's message, not a traceback."""
    from eventsourcing.persistence import PersistenceError

    try:
        yield
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, PersistenceError) as error:
        first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        click.echo(f"database error: {first}", err=True)
        click.echo("is CRM_DATABASE_URL reachable, and did `crm migrate` run?", err=True)
        raise SystemExit(1) from None


class _StopSignals:
    """SIGINT and SIGTERM ask for a graceful stop instead of killing the process."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self._on_stop = on_stop
        self._previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        if self._on_stop is not None:
            self._on_stop()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@click.group()
def main() -> None:
    """Loved CRM — configured by CRM_DATABASE_URL, CRM_REDIS_URL and CRM_SECRET_KEY."""


@main.command()
def migrate() -> None:
    """Create the event store tables and run the read-model migrations."""
    from interfaces.database import make_engine
    from interfaces.migrate import migrate as run_migrations

    settings = _settings()
    engine = make_engine(settings)
    try:
        with _database_errors():
            run_migrations(settings, engine)
    finally:
        engine.dispose()
    click.echo("database is up to date")


#: seconds a stopping server waits for open requests (live streams never end on their own)
GRACE_SECONDS = 5


@main.command("seed-demo")
def seed_demo() -> None:
    """Create the demo organization (once) and print its login."""
    from interfaces.demo import seed
    from interfaces.services import build_services

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
        try:
            email, password, created = seed(services)
        finally:
            services.close()
    click.echo(("created" if created else "found") + " the demo organization")
    click.echo(f"  login: {email}")
    click.echo(f"  password: {password}")
    if settings.is_postgres:
        click.echo("warning: this login is public: remove the demo user in production", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--no-projections", is_flag=True, help="Projectors run elsewhere (`crm projections run`)."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes; with more than one the projectors run in one child process.",
)
def serve(host: str, port: int, no_projections: bool, workers: int) -> None:
    """Serve the HTTP API (and run the projectors in-process unless told not to)."""
    import uvicorn

    from interfaces.http.app import create_app
    from interfaces.services import build_services

    settings = _settings()
    if workers > 1:
        _serve_workers(
            host, port, workers, projectors=settings.run_projections and not no_projections
        )
        return
    if no_projections:
        settings = msgspec.structs.replace(settings, run_projections=False)
    # built before the event loop starts: the app sets litestar's thread pool, which it cannot
    # do from inside a running loop (uvicorn's factory=True calls the factory there)
    with _database_errors():
        app = create_app(build_services(settings), own_services=True)
    backend = settings.database_url.split("://")[0]
    mode = "projectors elsewhere" if not settings.run_projections else "projectors in-process"
    click.echo(f"Loved CRM on http://{host}:{port} ({backend}, {mode})")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=GRACE_SECONDS,  # open live streams end after this
        )
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # installed before it: this one, so a requested stop exits with status 0 (a signal that
    # arrives before uvicorn listens makes it stop right after its start-up)
    stop = _StopSignals(on_stop=lambda: setattr(server, "should_exit", True))
    try:
        server.run()
    finally:
        stop.restore()
    if not server.started and stop.received is None:
        raise SystemExit(3)  # could not start (port taken, start-up failed): logged by uvicorn


def _serve_workers(host: str, port: int, workers: int, *, projectors: bool) -> None:
    """Several server processes (Python runs one core per process) and one projector process.

    Each worker builds its app from the environment with in-process projectors off, so reads
    with X-Min-Position poll the positions table; live updates across processes need Redis.
    """
    import shutil
    import subprocess
    import tempfile

    import uvicorn

    os.environ["CRM_RUN_PROJECTIONS"] = "0"
    # every worker counts its own requests: they write them under one fresh directory, which a
    # scrape of any worker sums (prometheus_client's multiprocess mode; see interfaces/http/metrics)
    metrics_dir = tempfile.mkdtemp(prefix="crm-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    child = None
    if projectors:
        command = [sys.executable, "-c", "from interfaces.cli import main; main()"]
        child = subprocess.Popen([*command, "projections", "run"])  # noqa: S603
    click.echo(f"Loved CRM on http://{host}:{port} ({workers} workers, projectors in a child)")
    try:
        uvicorn.run(
            "interfaces.http.app:asgi_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
    finally:
        if child is not None:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)


main.add_command(audit)
main.add_command(mail)


@main.group()
def projections() -> None:
    """Run, inspect and rebuild the read-model projectors."""


def _runner(names: tuple[str, ...] = ()) -> Any:
    from interfaces.database import wal_checkpoint_for
    from interfaces.live_notifications import live_listener
    from interfaces.observability import background_reporter
    from interfaces.services import build_services, projector_batch_setup
    from projections.registry import all_projectors
    from projections.runner import ProjectionRunner

    known = [p.name for p in all_projectors()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise click.BadParameter(
            f"unknown projection {', '.join(unknown)} (known: {', '.join(known)})"
        )
    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
        chosen = [p for p in all_projectors() if not names or p.name in names]
        try:
            runner = ProjectionRunner(
                services.engine,
                services.app.recorder,
                services.app.mapper,
                chosen,
                before_batch=projector_batch_setup(settings),
                after_batch=live_listener(services.live, chosen),
                after_round=wal_checkpoint_for(settings, services.engine),
            )
        except BaseException:
            services.close()
            raise
    runner.on_error = background_reporter("projections")
    return services, runner


@projections.command("run")
@click.option("--poll-interval", default=0.1, show_default=True, type=click.FloatRange(0.01, 60))
def projections_run(poll_interval: float) -> None:
    """Run every projector in this process until SIGINT (Ctrl+C) or SIGTERM."""
    from interfaces.observability import init_sentry, shutdown_sentry
    from interfaces.outbox import waking

    services, runner = _runner()
    reports = init_sentry(services.settings)
    stop = _StopSignals()
    try:
        if services.settings.outbox:  # sends are delivered where their outbox rows are made
            runner.after_batch = waking(runner.after_batch, services.start_outbox())
            services.start_timers()
        runner.start(poll_interval=poll_interval)
        click.echo("projectors running; Ctrl+C or SIGTERM to stop")
        while stop.received is None:
            time.sleep(0.05)
        click.echo(f"{signal.Signals(stop.received).name}: finishing the current batch")
    finally:
        runner.stop()
        services.close()
        stop.restore()
        if reports:
            shutdown_sentry()
    click.echo("projectors stopped")


@projections.command("status")
def projections_status() -> None:
    """Print each projector's position and lag behind the log."""
    from interfaces.services import build_services
    from projections.registry import all_projectors
    from projections.runner import read_positions

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
        try:
            head = services.app.recorder.max_notification_id() or 0
            with services.engine.connect() as conn:
                positions = read_positions(conn)
        finally:
            services.close()
    click.echo(f"{'projection':<14} {'position':>10} {'lag':>10}   (log head {head})")
    for name in sorted(p.name for p in all_projectors()):
        position = positions.get(name, 0)
        click.echo(f"{name:<14} {position:>10} {max(0, head - position):>10}")


@projections.command("rebuild")
@click.argument("name")
def projections_rebuild(name: str) -> None:
    """Empty one read model and rebuild it from the start of the log."""
    from rich.progress import Progress

    services, runner = _runner((name,))
    try:
        with _database_errors():
            head = services.app.recorder.max_notification_id() or 0
            with Progress() as progress:
                task = progress.add_task(f"rebuilding {name}", total=max(head, 1))

                def advance(_: int) -> None:
                    progress.update(task, completed=min(runner.positions[name], head))

                rows = runner.rebuild(name, progress=advance)
                progress.update(task, completed=max(head, 1))
    finally:
        services.close()
    click.echo(f"{name} rebuilt: {head} events in the log, {rows} rows")


@projections.command("verify")
@click.argument("name", required=False)
@click.option("--org", "organization", default=None, help="Verify one organization (its id).")
@click.option(
    "--max-rows",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Differing rows listed per table.",
)
def projections_verify(name: str | None, organization: str | None, max_rows: int) -> None:
    """Rebuild read models from the log into scratch tables and compare them with the live ones.

    Each projector is compared at the position its live tables reached; nothing live is
    written. Prints OK per table or the rows that differ; exit status 1 if any differ.
    """
    from uuid import UUID

    from interfaces.services import build_services
    from projections.registry import all_projectors
    from projections.verify import verify

    known = [p.name for p in all_projectors()]
    if name is not None and name not in known:
        raise click.BadParameter(
            f"unknown projection {name} (known: {', '.join(known)})", param_hint="NAME"
        )
    try:
        org = None if organization is None else UUID(organization)
    except ValueError:
        raise click.BadParameter("not a UUID", param_hint="--org") from None
    settings = _settings()
    started = time.monotonic()
    with _database_errors():
        services = build_services(settings, with_runner=False)
        try:
            head = services.app.recorder.max_notification_id() or 0
            click.echo(f"rebuilding from the log ({head} events) into scratch tables", err=True)
            app = services.app
            verdicts = verify(
                services.engine,
                app.recorder,
                app.mapper,
                () if name is None else (name,),
                organization_id=org,
                max_rows=max_rows,
            )
        finally:
            services.close()
    for verdict in verdicts:
        for line in verdict.lines():
            click.echo(line)
    differing = sum(1 for v in verdicts if not v.ok)
    took = f"in {time.monotonic() - started:.1f} s"
    if differing:
        click.echo(f"{differing} of {len(verdicts)} tables differ from the log ({took})")
        raise SystemExit(1)
    click.echo(f"all {len(verdicts)} tables match the log ({took})")


@main.group()
def outbox() -> None:
    """Deliver recorded sends (WhatsApp messages, calls) through the providers."""


@outbox.command("run")
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 60))
def outbox_run(poll_interval: float) -> None:
    """Run the outbox dispatcher in this process until SIGINT (Ctrl+C) or SIGTERM.

    Run the projectors and the API with CRM_OUTBOX=off to deliver from here only (running
    both is safe: each send is claimed by one dispatcher).
    """
    from interfaces.observability import init_sentry, shutdown_sentry
    from interfaces.services import build_services

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
    reports = init_sentry(settings)
    stop = _StopSignals()
    try:
        services.start_outbox(poll_interval=poll_interval)
        click.echo("outbox running; Ctrl+C or SIGTERM to stop")
        while stop.received is None:
            time.sleep(0.05)
        click.echo(f"{signal.Signals(stop.received).name}: finishing the current delivery")
    finally:
        services.close()
        stop.restore()
        if reports:
            shutdown_sentry()
    click.echo("outbox stopped")


@main.group()
def timers() -> None:
    """Fire what comes due by the clock: task reminders, response SLA breaches."""


@timers.command("run")
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 60))
def timers_run(poll_interval: float) -> None:
    """Run the timer jobs in this process until SIGINT (Ctrl+C) or SIGTERM.

    Safe beside the timers of `crm serve` and `crm projections run`: each fact is recorded once.
    """
    from interfaces.observability import init_sentry, shutdown_sentry
    from interfaces.services import build_services

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
    reports = init_sentry(settings)
    stop = _StopSignals()
    try:
        services.start_timers(poll_interval=poll_interval)
        click.echo("timers running; Ctrl+C or SIGTERM to stop")
        while stop.received is None:
            time.sleep(0.05)
    finally:
        services.close()
        stop.restore()
        if reports:
            shutdown_sentry()
    click.echo("timers stopped")


@outbox.command("status")
def outbox_status() -> None:
    """Print how many sends are pending, being sent, done and failed."""
    from interfaces.services import build_services
    from projections.outbox import counts

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
        try:
            with services.engine.connect() as conn:
                found = counts(conn)
        finally:
            services.close()
    for status in ("pending", "sending", "done", "failed"):
        click.echo(f"{status:<8} {found.get(status, 0):>8}")


@main.command("simulate-inbound")
@click.option("--org", "organization", default=None, help="organization id (default: the demo's)")
@click.option("--from", "sender", default="+5511987654321", show_default=True)
@click.option("--name", default="Ana Lima", show_default=True)
@click.option("--text", default="Oi! Quero um orçamento.", show_default=True)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
def simulate_inbound(organization: str | None, sender: str, name: str, text: str, url: str) -> None:
    """Post a WhatsApp message to a running server, signed as Meta would sign it (local demos)."""
    from uuid import UUID

    from interfaces.demo import DEMO_EMAIL
    from interfaces.services import build_services
    from interfaces.simulate import simulate

    settings = _settings()
    with _database_errors():
        services = build_services(settings, with_runner=False)
    try:
        if organization is None:
            demo = services.users.by_email(DEMO_EMAIL)
            orgs = [] if demo is None else _organizations_of(services, demo.id)
            if not orgs:
                raise click.ClickException(
                    "no demo organization: run `crm seed-demo` or pass --org"
                )
            org_id = orgs[0]
        else:
            try:
                org_id = UUID(organization)
            except ValueError:
                raise click.BadParameter("not a UUID", param_hint="--org") from None
        response = simulate(services, org_id, url, sender, name, text)
    except httpx_errors() as error:
        raise click.ClickException(f"could not reach {url}: {error}") from None
    finally:
        services.close()
    click.echo(f"{response.status_code} {response.text}")
    if response.status_code != 200:
        raise SystemExit(1)


def httpx_errors() -> type[Exception]:
    import httpx

    return httpx.HTTPError


def _organizations_of(services: Any, user_id: Any) -> list[Any]:
    import sqlalchemy as sa

    from projections.directory import rm_members

    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(rm_members.c.organization_id).where(rm_members.c.user_id == user_id)
        )
        return [row[0] for row in rows]
