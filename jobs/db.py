"""Engine and sessions for the job database: a SQLite file by default, any SQLAlchemy URL on request.

Why these SQLite settings: the app, the dispatcher and every worker process write the same file
at once (progress per step, chains per question). WAL lets readers (the UI) go on while one
writer commits; a 30 s busy timeout makes a writer wait for the lock instead of failing with
'database is locked'; foreign keys are off in SQLite unless asked for on each connection.
The schema comes only from Alembic migrations (jobs/migrations), run in code at start-up, so a
database made by an older version is upgraded in place and no alembic.ini is needed.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DATABASE_ENV = "MOTE_DATABASE_URL"
DATABASE_FILE = "mote.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url(home: Path | None = None, url: str | None = None) -> str:
    """The URL to use: an explicit `url`, else $MOTE_DATABASE_URL, else SQLite `<home>/mote.db`."""
    chosen = url or os.environ.get(DATABASE_ENV)
    if chosen:
        return chosen
    if home is None:
        from core.model_source import default_home

        home = default_home()
    home = Path(home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / DATABASE_FILE}"


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed row
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine with the settings above; the error names the URL form when the URL is bad."""
    try:
        parsed = make_url(url)
    except Exception as error:
        raise ValueError(
            f"Cannot read database URL {url!r} ({error}): use sqlite:////path/mote.db or "
            "postgresql+psycopg://user:password@host:5432/dbname."
        ) from None
    if _is_sqlite(parsed):
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (rows are handed to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


def init_db(url: str) -> Engine:
    """Create or upgrade the schema to the newest migration, then return an engine for `url`."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return engine


def open_database(home: Path | None = None, url: str | None = None) -> tuple[Engine, sessionmaker[Session]]:
    """Migrate and connect in one call: what launch.py and the worker use."""
    engine = init_db(database_url(home, url))
    return engine, session_factory(engine)
