"""`crm audit export` and `crm audit verify` on SQLite files and on a scratch PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

from application.audit.chain import canonical
from tests.interfaces.test_cli import crm, ok, open_services, write_history


def history(env: dict[str, str]) -> tuple[UUID, int]:
    """A migrated database with the demo and a second organization; that one's id and count."""
    ok(env, "migrate")
    ok(env, "seed-demo")
    services = open_services(env)
    try:
        head = write_history(services)
        [org] = {n.originator_id for n in services.app.recorder.select_notifications(head, 1)}
        org_id = services.app.repository.get(org).organization_id
        count = len(services.app.recorder.select_organization_notifications(org_id, limit=10_000))
    finally:
        services.close()
    return org_id, count


def test_an_export_written_by_the_cli_verifies_offline_and_is_audited(
    env: dict[str, str], tmp_path: Path
) -> None:
    org, count = history(env)
    out = tmp_path / "history.ndjson"

    written = ok(env, "audit", "export", "--org", str(org), "--out", str(out))

    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert f"{count} events of organization {org}" in written
    assert lines[-1]["count"] == count and {e["organization_id"] for e in lines} == {str(org)}
    verified = ok({}, "audit", "verify", str(out))
    assert verified.startswith(f"OK {count} events") and lines[-1]["final_hash"] in verified
    services = open_services(env)
    try:
        events = services.app.recorder.select_organization_notifications(org, limit=10_000)
    finally:
        services.close()
    assert len(events) == count + 1 and events[-1].topic.endswith("HistoryExport.Made")


def test_verify_names_the_first_altered_line_and_fails(env: dict[str, str], tmp_path: Path) -> None:
    org, _ = history(env)
    out = tmp_path / "history.ndjson"
    ok(env, "audit", "export", "--org", str(org), "--since", "2000-01-01", "--out", str(out))
    lines = out.read_bytes().splitlines(keepends=True)
    altered = json.loads(lines[3]) | {"version": 99}  # still canonical JSON, hash unchanged
    lines[3] = canonical(altered) + b"\n"
    out.write_bytes(b"".join(lines))

    result = crm({}, "audit", "verify", str(out))

    assert result.exit_code == 1
    assert "BROKEN at line 4" in result.output


def test_bad_options_are_refused_before_anything_is_written(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(env, "migrate")
    out = tmp_path / "history.ndjson"
    for args in (
        ["--org", "nope"],
        ["--org", str(UUID(int=7)), "--since", "yesterday"],
        ["--org", str(UUID(int=7)), "--types", "Lead.Nothing"],
        ["--org", str(UUID(int=7))],  # no such organization
    ):
        result = crm(env, "audit", "export", *args, "--out", str(out))
        assert result.exit_code != 0, (args, result.output)
    assert not out.exists()
