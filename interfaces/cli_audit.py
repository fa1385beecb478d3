"""`crm audit`: export an organization's history hash-chained, and verify such a file offline."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import click

#: who an export made from the command line is recorded as
CLI_ACTOR_ID = "crm-cli"


@click.group()
def audit() -> None:
    """Export an organization's history (hash-chained NDJSON) and verify such a file."""


@audit.command("export")
@click.option("--org", "organization", required=True, help="organization id")
@click.option("--since", default=None, help="events at or after this ISO 8601 time")
@click.option("--until", default=None, help="events before this ISO 8601 time")
@click.option("--types", default=None, help="comma-separated event types, e.g. Lead.Won")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="the NDJSON file to write",
)
def audit_export(
    organization: str, since: str | None, until: str | None, types: str | None, out: Path
) -> None:
    """Write every stored event of one organization, in log order, straight from the log."""
    from rich.progress import Progress

    from application.audit.export import ExportLines, parse_filters, start_export
    from application.identity.organizations import organization_exists
    from domain.errors import InvalidValueError
    from domain.values import Actor
    from interfaces.cli import _database_errors, _settings
    from interfaces.services import build_services

    try:
        org_id = UUID(organization)
    except ValueError:
        raise click.BadParameter("not a UUID", param_hint="--org") from None
    try:
        filters = parse_filters(since, until, types)
    except InvalidValueError as error:
        raise click.BadParameter(error.message, param_hint=f"--{error.field}") from None
    settings = _settings()
    partial = out.with_name(out.name + ".partial")
    with _database_errors():
        services = build_services(settings, with_runner=False)
        try:
            if not organization_exists(services.app, org_id):
                raise click.ClickException(f"no organization {org_id}")
            actor = Actor(kind="system", id=CLI_ACTOR_ID, user_agent=_who())
            export = start_export(services.app, org_id, filters, actor, channel="cli")
            with Progress() as progress, partial.open("wb") as file:
                task = progress.add_task("exporting", total=max(export.up_to, 1))
                lines = ExportLines(
                    services.app, export, lambda p: progress.update(task, completed=p)
                )
                for chunk in lines:
                    file.write(chunk)
                progress.update(task, completed=max(export.up_to, 1))
            partial.replace(out)  # a cut export never takes the file's name
        finally:
            partial.unlink(missing_ok=True)
            services.close()
    click.echo(f"{lines.chain.count} events of organization {org_id} written to {out}")
    click.echo(f"final hash {lines.chain.last_hash}")


def _who() -> str:
    """The operating-system user running the export, for the audit record."""
    try:
        return f"crm audit export (user {getpass.getuser()})"
    except (OSError, KeyError):  # no login name in this environment
        return "crm audit export"


@audit.command("verify")
@click.argument("file", type=click.File("rb"))
def audit_verify(file: BinaryIO) -> None:
    """Recompute the hash chain of an export offline; name the first line that breaks it."""
    from application.audit.chain import ChainBrokenError, verify

    try:
        verified = verify(file)
    except ChainBrokenError as error:
        click.echo(f"BROKEN at line {error.line}: {error.reason}", err=True)
        raise SystemExit(1) from None
    click.echo(
        f"OK {verified.count} events of organization {verified.organization_id}; "
        f"final hash {verified.final_hash}"
    )
