"""The `crm` command: migrate, seed the demo, serve, and operate the projections."""

from __future__ import annotations

import sys
from typing import Any

import click
import sqlalchemy as sa

from interfaces.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        click.echo(f"configuration error: {error}", err=True)
        sys.exit(2)


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
    run_migrations(settings, engine)
    engine.dispose()
    click.echo("database is up to date")


@main.command("seed-demo")
def seed_demo() -> None:
    """Create the demo organization (once) and print its login."""
    from interfaces.demo import seed
    from interfaces.services import build_services

    services = build_services(_settings(), with_runner=False)
    try:
        email, password, created = seed(services)
    finally:
        services.close()
    click.echo(("created" if created else "found") + " the demo organization")
    click.echo(f"  login: {email}")
    click.echo(f"  password: {password}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--no-projections", is_flag=True, help="Projectors run elsewhere (`crm projections run`)."
)
def serve(host: str, port: int, no_projections: bool) -> None:
    """Serve the HTTP API (and run the projectors in-process unless told not to)."""
    import os

    import uvicorn

    if no_projections:
        os.environ["CRM_RUN_PROJECTIONS"] = "0"
    settings = _settings()
    click.echo(f"Loved CRM on http://{host}:{port} ({settings.database_url.split('://')[0]})")
    uvicorn.run(
        "interfaces.http.app:asgi_factory",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )


@main.group()
def projections() -> None:
    """Run, inspect and rebuild the read-model projectors."""


def _runner(names: tuple[str, ...] = ()) -> Any:
    from interfaces.services import build_services
    from projections.registry import all_projectors
    from projections.runner import ProjectionRunner

    services = build_services(_settings(), with_runner=False)
    chosen = [p for p in all_projectors() if not names or p.name in names]
    unknown = set(names) - {p.name for p in chosen}
    if unknown:
        known = ", ".join(p.name for p in all_projectors())
        raise click.BadParameter(
            f"unknown projection {', '.join(sorted(unknown))} (known: {known})"
        )
    return services, ProjectionRunner(
        services.engine, services.app.recorder, services.app.mapper, chosen
    )


@projections.command("run")
def projections_run() -> None:
    """Run every projector in this process until interrupted."""
    services, runner = _runner()
    click.echo("projectors running; Ctrl+C to stop")
    try:
        runner.run_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        services.close()


@projections.command("status")
def projections_status() -> None:
    """Print each projector's position and lag behind the log."""
    from projections.runner import read_positions

    services, _ = _runner()
    head = services.app.recorder.max_notification_id() or 0
    with services.engine.connect() as conn:
        positions = read_positions(conn)
    click.echo(f"{'projection':<12} {'position':>10} {'lag':>10}   (log head {head})")
    for name, position in sorted(positions.items()):
        click.echo(f"{name:<12} {position:>10} {max(0, head - position):>10}")
    services.close()


@projections.command("rebuild")
@click.argument("name")
def projections_rebuild(name: str) -> None:
    """Empty one read model and rebuild it from the start of the log."""
    from rich.progress import Progress

    from projections.runner import positions

    services, runner = _runner((name,))
    projector = runner.projectors[0]
    head = services.app.recorder.max_notification_id() or 0
    with services.engine.begin() as conn:
        for table in projector.tables:
            conn.execute(table.delete())
        conn.execute(
            positions.update().where(positions.c.projection_name == name).values(position=0)
        )
    runner.positions[name] = 0
    with Progress() as progress:
        task = progress.add_task(f"rebuilding {name}", total=head)
        runner.catch_up(progress=lambda n: progress.advance(task, n))
    with services.engine.connect() as conn:
        rows = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in projector.tables
        )
    click.echo(f"{name} rebuilt: {head} events read, {rows} rows")
    services.close()
