"""Schema set-up: the event store's tables (by its recorder) and Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from application.store import CrmApplication
from interfaces.database import eventstore_env
from interfaces.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(settings: Settings, engine: Engine) -> None:
    """Create the event tables once (services run with CREATE_TABLE=n), then upgrade."""
    app = CrmApplication(env=eventstore_env(settings, create_table=True))
    app.close()
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")
    if not settings.is_postgres:
        owner_only(Path(settings.sqlite_path))


def owner_only(database: Path) -> None:
    """The embedded database holds read models in clear (names, emails): readable by its owner
    only, whatever the umask. SQLite gives its -wal and -shm files the database's mode."""
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists():
            path.chmod(0o600)


def make_revision(engine: Engine, message: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)
