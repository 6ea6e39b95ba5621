"""The FastAPI app factory: the one place (with the CLI) that knows every package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State

from dispatch.dayplans.router import router as plans_router
from dispatch.router import router as dispatch_router
from geo311 import __version__, health
from geo311.api.categories import router as categories_router
from geo311.api.dedup import router as dedup_router
from geo311.api.intake import router as intake_router
from geo311.api.live import router as live_router
from geo311.api.notices import router as notices_router
from geo311.api.open311 import PREFIX as OPEN311_PREFIX
from geo311.api.open311 import router as open311_router
from geo311.api.open311_refusal import ERRORS_RESPONSE as OPEN311_ERRORS
from geo311.api.open311_refusal import refusal as open311_refusal
from geo311.api.signin import router as signin_router
from geo311.kernel.database import Database
from geo311.kernel.http import (
    install_error_handlers,
    install_input_guard,
    install_openapi_problems,
    install_security_headers,
)
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.notify.router import router as notify_router
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.runtime import open_database
from geo311.kernel.settings import Settings, get_settings
from geo311.pages import router as pages_router
from maps.analytics.router import router as analytics_router
from maps.router import router as maps_router
from work_orders.router import router as work_orders_router

# Swagger UI's files come from a Python package so /docs works with no network.
_DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        if app.state.db is None:
            stack.callback(setattr, app.state, "db", None)
            app.state.db = stack.enter_context(open_database(app.state.settings))
        yield
        hub = getattr(app.state, "live_hub", None)
        if hub is not None:
            await hub.close()


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    worker: BackgroundWorker | None = None,
) -> FastAPI:
    """Return the geo311 app. Without ``db`` it opens its own (embedded cluster if no URL).
    ``worker``: the in-process notice worker, whose state /healthz reports."""
    settings = settings or get_settings()

    app = FastAPI(
        title="geo311",
        version=__version__,
        description=(
            "311 field operations on PostGIS: reports with photos, incidents, work orders, "
            "crews' routes. Errors are application/problem+json (RFC 9457)."
        ),
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    bind_app(app, settings, db=db, worker=worker)
    install_error_handlers(app)
    install_input_guard(app, shapes={OPEN311_PREFIX: open311_refusal})
    install_security_headers(app)  # outermost: refusals carry the headers too
    install_openapi_problems(app, own_shapes={OPEN311_PREFIX: OPEN311_ERRORS})
    app.include_router(intake_router)
    app.include_router(dedup_router)
    app.include_router(categories_router)
    app.include_router(dispatch_router)
    app.include_router(plans_router)
    app.include_router(pages_router)
    app.include_router(signin_router)
    app.include_router(open311_router)
    app.include_router(work_orders_router)
    app.include_router(notices_router)
    app.include_router(notify_router)
    app.include_router(maps_router)  # the map pages, their JSON and their files
    app.include_router(analytics_router)
    app.include_router(live_router)
    app.mount("/static/docs", StaticFiles(directory=_DOCS_STATIC), name="docs-static")

    def _checks(request: Request, *, readiness: bool) -> JSONResponse:
        engine = getattr(request.app.state, "health_engine", None)
        if engine is None:
            database: Database = request.app.state.db
            engine = health.probe_engine(
                database.engine.url, timeout_s=request.app.state.settings.db.health_timeout_s
            )
            request.app.state.health_engine = engine
        in_process: BackgroundWorker | None = request.app.state.worker
        checks = health.run_checks(
            engine,
            stalled_s=request.app.state.settings.notify.stalled_worker_s,
            in_process=in_process.state if in_process is not None else None,
            readiness=readiness,
        )
        status = 200 if all(c.ok for c in checks) else 503
        return JSONResponse(
            health.body(checks), status_code=status, headers={"Cache-Control": "no-store"}
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> JSONResponse:
        return _checks(request, readiness=False)

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> JSONResponse:
        return _checks(request, readiness=True)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/report")

    return app


def bind_app(
    app: FastAPI,
    settings: Settings,
    *,
    db: Database | None = None,
    worker: BackgroundWorker | None = None,
) -> None:
    """Give ``app`` (made by create_app) its settings, database and in-process worker, and
    forget what it cached from the ones before (link signer, password hasher, live hub, health
    engine). A request reads all of them from ``app.state``, never from what the app was built
    with, so one built app can serve another database: the tests do, because FastAPI builds
    every route's handler on an app's first request (0.5–0.9 s, per app)."""
    app.state = State()
    app.state.settings = settings
    app.state.media = LocalMediaStore(settings.media_root)
    app.state.db = db  # None: the lifespan opens the settings' own, and closes it
    app.state.worker = worker


def create_served_app() -> FastAPI:
    """Return the app of one of several serving processes (``geo311 run --workers N``):
    settings from the environment, its own pool on the database the parent migrated."""
    settings = get_settings()
    if settings.db.url is None:
        raise RuntimeError("a serving process needs GEO311_DB__URL (geo311 run sets it)")
    db = Database.connect(settings.db.url.get_secret_value(), pool_size=settings.db.pool_size)
    return create_app(settings, db=db)
