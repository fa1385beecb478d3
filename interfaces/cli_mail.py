"""`crm mail`: read the mails the embedded default wrote to CRM_MAIL_DIR instead of sending them."""

from __future__ import annotations

from pathlib import Path

import click

#: mails listed unless --limit says otherwise
LIST_LIMIT = 20


@click.group()
def mail() -> None:
    """Mails written to CRM_MAIL_DIR when no CRM_SMTP_URL is set (invitations, resets, …)."""


def _mail_dir() -> Path:
    from interfaces.email import load_email_settings
    from interfaces.settings import SettingsError

    try:
        settings = load_email_settings()
    except SettingsError as error:
        click.echo(f"configuration error: {error}", err=True)
        raise SystemExit(2) from None
    if settings.smtp_url:
        click.echo("note: CRM_SMTP_URL is set: new mails are sent, not written here", err=True)
    return Path(settings.mail_dir)


@mail.command("list")
@click.option("--limit", default=LIST_LIMIT, show_default=True, type=click.IntRange(1, None))
def mail_list(limit: int) -> None:
    """The newest mails first: time (UTC), recipient, subject and file."""
    from interfaces.email import mail_files, stored_mail

    directory = _mail_dir()
    found = mail_files(directory)
    if not found:
        click.echo(f"no mail in {directory}")
        return
    click.echo(f"{'time (UTC)':<19}  {'to':<32}  {'subject':<44}  file")
    for item in map(stored_mail, found[:limit]):
        at = f"{item.at:%Y-%m-%d %H:%M:%S}" if item.at is not None else "?"
        click.echo(f"{at:<19}  {item.to:<32}  {item.subject:<44}  {item.path.name}")
    if len(found) > limit:
        click.echo(f"… {len(found) - limit} older in {directory}")


@mail.command("show")
@click.argument("which", default="latest")
@click.option("--raw", is_flag=True, help="Print the file as stored (RFC 5322, encoded).")
def mail_show(which: str, raw: bool) -> None:
    """Print one mail with its body, links usable: WHICH is `latest` (the default), a file
    name or id from `crm mail list` (the part after the time is enough), or a path."""
    from interfaces.email import read_mail

    path = _find(_mail_dir(), which)
    if raw:
        click.echo(path.read_bytes().decode("utf-8", "replace"), nl=False)
        return
    message = read_mail(path)
    for header in ("Date", "From", "To", "Subject", "Message-ID"):
        click.echo(f"{header}: {message[header]}")
    click.echo(f"File: {path}")
    body = message.get_body(("plain",))
    click.echo("")
    click.echo(body.get_content().replace("\r\n", "\n") if body is not None else "")


def _find(directory: Path, which: str) -> Path:
    from interfaces.email import mail_files

    given = Path(which)
    if which != "latest" and given.suffix == ".eml" and given.is_file():
        return given
    found = mail_files(directory)
    if not found:
        raise click.ClickException(f"no mail in {directory}")
    if which == "latest":
        return found[0]
    wanted = which.removesuffix(".eml")
    matches = [p for p in found if p.stem == wanted]
    matches = matches or [p for p in found if p.stem.startswith(wanted) or p.stem.endswith(wanted)]
    if len(matches) != 1:
        problem = "no mail" if not matches else f"{len(matches)} mails"
        raise click.ClickException(f"{problem} in {directory} match {which!r}: see `crm mail list`")
    return matches[0]
