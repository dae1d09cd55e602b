"""Alembic environment: migrates the engine handed over by `parcours.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from parcours.settings import get_settings
from parcours.store.db import connect
from parcours.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        # `alembic` run by hand (e.g. `alembic revision --autogenerate`): use the settings.
        engine = connect(get_settings().database_url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
