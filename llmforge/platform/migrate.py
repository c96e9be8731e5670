"""Apply Alembic migrations programmatically (``llmforge up`` and ``llmforge db upgrade``).

No ``alembic.ini`` is needed: the script location is this package's
``migrations`` folder and the URL comes from Settings.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from llmforge.platform.db import get_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``; safe to run concurrently-ish and repeatedly."""
    engine = get_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())
