"""One typed settings object for the whole platform.

Every knob is an ``LLMFORGE_*`` environment variable (or a ``.env`` file in the
working directory). Embedded defaults all live under one data directory,
``LLMFORGE_HOME`` (default ``~/.llmforge``), so a laptop install is one folder
to back up or delete. Switching to the distributed mode is configuration only:
point ``LLMFORGE_DATABASE_URL`` at PostgreSQL, ``LLMFORGE_BROKER_URL`` at Redis
and ``LLMFORGE_MLFLOW_URI`` at an MLflow server.

Use :func:`get_settings` (cached) everywhere; tests call
``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMFORGE_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".llmforge")
    """Data directory for every embedded store (database, broker, MLflow, artifacts, logs)."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata DB. Default: SQLite at `$HOME/llmforge.db` (WAL mode)."""

    broker_url: str | None = None
    """Celery broker. Default: kombu's `filesystem://` transport under `$HOME/broker` (no server)."""

    broker_poll_interval: float = 0.02
    """Seconds between polls of the embedded broker (kombu's default of 1 s puts a 1 s floor on job latency)."""

    mlflow_uri: str | None = None
    """MLflow tracking/registry URI. Default: the server `llmforge up` starts, else `sqlite:///$HOME/mlflow.db`."""

    artifact_url: str | None = None
    """Artifact store root (local path or any fsspec URL). Default: `$HOME/artifacts`."""

    host: str = "127.0.0.1"
    """Address the API binds to. Anything but loopback must be asked for explicitly."""

    port: int = 8000
    """API port."""

    mlflow_port: int = 5001
    """Port of the embedded MLflow server started by `llmforge up` (bound to 127.0.0.1 only)."""

    cors_origins: list[str] = []
    """Origins allowed to call the API from a browser. `*` is refused: the API takes credentials."""

    max_body_bytes: int = 1_048_576
    """Largest request body accepted by JSON routes (413 beyond). Upload routes set their own limit."""

    max_upload_bytes: int = 1 << 30
    """Largest file accepted by upload routes (dataset files); the body streams to disk, never to memory."""

    import_roots: list[Path] = []
    """Server-side folders an admin allows datasets to be imported from (`from-path`); empty means none."""

    # --- jobs -------------------------------------------------------------------
    lease_seconds: float = 30.0
    """A running job's lease; a worker renews it every `heartbeat_seconds`. A lapsed lease means the worker died."""

    heartbeat_seconds: float = 2.0
    """How often a worker renews leases, flushes logs/metrics and checks for cancellation."""

    reaper_interval: float = 2.0
    """How often the control plane looks for lapsed leases and undelivered jobs."""

    redispatch_after: float = 60.0
    """A queued job not picked up after this many seconds is published again (duplicates are no-ops)."""

    max_attempts: int = 3
    """Default attempt cap: a job whose worker dies this many times fails with the reason."""

    cancel_grace_seconds: float = 5.0
    """After a cancel, how long a job's processes get between SIGTERM and SIGKILL."""

    extra_task_modules: list[str] = []
    """Extra modules that register job kinds (plugins, test fixtures), imported by API and workers."""

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_cors(cls, v: list[str]) -> list[str]:
        if "*" in v:
            raise ValueError(
                "LLMFORGE_CORS_ORIGINS may not contain '*': the API accepts credentials, "
                "so list the exact origins (e.g. [\"https://console.example.com\"])"
            )
        return v

    @model_validator(mode="after")
    def _derive_defaults(self) -> "Settings":
        self.home = Path(self.home).expanduser()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'llmforge.db'}"
        if self.broker_url is None:
            self.broker_url = "filesystem://"
        if self.artifact_url is None:
            self.artifact_url = str(self.home / "artifacts")
        if self.mlflow_uri is None:
            self.mlflow_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError("LLMFORGE_LEASE_SECONDS must be at least twice LLMFORGE_HEARTBEAT_SECONDS")
        return self

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def admin_key_file(self) -> Path:
        return self.home / "admin.key"

    def mlflow_artifact_location(self, experiment: str) -> str | None:
        """Where a new MLflow experiment keeps its artifacts.

        With a local store (``sqlite:``/``file:``) MLflow's default is ``./mlruns`` in whatever
        folder the process happens to run in; keep them under ``$LLMFORGE_HOME/mlartifacts``
        instead. With a tracking server (``http(s)://``) the server decides (None).
        """
        if self.mlflow_uri.startswith(("http://", "https://", "databricks")):
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
        return (self.home / "mlartifacts" / safe).as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()
