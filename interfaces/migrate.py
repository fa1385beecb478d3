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


def make_revision(engine: Engine, message: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)
