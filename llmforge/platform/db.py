"""Engine and sessions for the metadata database (SQLite by default, PostgreSQL by URL).

SQLite runs in WAL mode with a busy timeout so that the API, the worker's pool
processes and their heartbeat threads can all write at once without
"database is locked" errors; state changes are single conditional UPDATEs
(compare-and-set), never read-then-write, so SQLite's lock upgrade trap does not
apply. Engines are cached per URL; a forked worker process disposes the pool it
inherited (``dispose_after_fork``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_ENGINES: dict[str, Engine] = {}
_MAKERS: dict[str, sessionmaker[Session]] = {}
_LOCK = Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: durable at checkpoints, no fsync per commit
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(url: str) -> Engine:
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                path = url.split("///", 1)[-1]
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            _ENGINES[url] = engine
            _MAKERS[url] = sessionmaker(engine, expire_on_commit=False)
        return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    get_engine(url)
    session = _MAKERS[url]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_after_fork() -> None:
    """Forget connections inherited over fork(): a socket or SQLite handle shared by two processes corrupts."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose(close=False)


def dispose_all() -> None:
    """Close every pool (tests and shutdown)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _MAKERS.clear()
