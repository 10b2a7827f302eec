"""Alembic environment for the job database.

Runs inside `jobs.db.init_db`, which hands over an open connection (config.attributes). To
autogenerate a new migration, pass the database as `-x url=...` (jobs/migrations/README).
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from jobs.records import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things, batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("No database given: pass -x url=DATABASE_URL (or use jobs.db.init_db).")
    with create_engine(url).connect() as opened:
        run_migrations(opened)
        opened.commit()
