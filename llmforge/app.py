"""Composition root: builds the FastAPI app, mounts every router, lists every task module.

This is the only module that knows every service. The platform never imports
a service; services' edges import the platform; this file imports both. The
worker is started from here too (``worker_celery``), so the API and the
workers always agree on which job kinds exist.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager

from celery import Celery
from fastapi import Depends, FastAPI, Response
from fastapi.routing import APIRoute
from sqlalchemy import text

from llmforge.data_pipeline import router as data_router
from llmforge.platform import access_router, lineage_router
from llmforge.platform.db import session_scope
from llmforge.platform.deps import PrincipalDep, get_principal
from llmforge.platform.http import GuardMiddleware, install_error_handlers
from llmforge.platform.jobs import router as jobs_router
from llmforge.platform.jobs.maintenance import MaintenanceLoop
from llmforge.platform.observability import Metrics
from llmforge.platform.queue import get_celery
from llmforge.settings import Settings, get_settings

# Every module that registers job kinds. Services append theirs here.
TASK_MODULES: tuple[str, ...] = ("llmforge.platform.jobs.builtin", "llmforge.data_pipeline.tasks", "llmforge.training.tasks")
API_PREFIX = "/api/v1"
# Routes that accept bodies larger than LLMFORGE_MAX_BODY_BYTES (uploads), by path regex -> setting name.
UPLOAD_ROUTES: tuple[str, ...] = (data_router.UPLOAD_PATH,)


def task_modules(settings: Settings) -> tuple[str, ...]:
    return TASK_MODULES + tuple(settings.extra_task_modules)


def load_task_modules(settings: Settings) -> None:
    for name in task_modules(settings):
        importlib.import_module(name)


def worker_celery(settings: Settings) -> Celery:
    """The Celery app a worker runs: the platform's task plus every job kind module."""
    load_task_modules(settings)
    return get_celery(settings, include=task_modules(settings))


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_task_modules(settings)
    metrics = Metrics(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        loop = MaintenanceLoop(settings) if maintenance else None
        if loop:
            loop.start()
        yield
        if loop:
            loop.stop()

    app = FastAPI(
        title="llmforge",
        version="0.1.0",
        description="Control plane of llmforge. Every route but /healthz needs `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(metrics.middleware())
    # an upload's multipart envelope adds a few hundred bytes to the file itself
    limits = {pattern: settings.max_upload_bytes + 65536 for pattern in UPLOAD_ROUTES}
    app.add_middleware(GuardMiddleware, default_limit=settings.max_body_bytes, limits=limits,
                       allowed_origins=settings.cors_origins)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
                           allow_methods=["*"], allow_headers=["Authorization", "Content-Type"])

    auth = [Depends(get_principal)]
    app.include_router(access_router.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(jobs_router.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(lineage_router.router, prefix=API_PREFIX, dependencies=auth)
    for r in data_router.ROUTERS:
        app.include_router(r, prefix=API_PREFIX, dependencies=auth)

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    def healthz() -> dict[str, str]:
        """Liveness and database reachability. The only route without a key; it reveals nothing else."""
        with session_scope(settings.database_url) as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["health"], dependencies=auth, response_model=None)
    def prometheus_metrics() -> Response:
        """Prometheus exposition (scrape with a bearer token)."""
        return metrics.render()

    @app.get(f"{API_PREFIX}/openapi.json", tags=["health"], include_in_schema=False)
    def openapi(_principal: PrincipalDep) -> dict:
        return app.openapi()

    return app
