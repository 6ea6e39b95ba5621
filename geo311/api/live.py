"""``GET /api/v1/live``: the changes open pages must show, as Server-Sent Events.

Any signed-in staff user may listen; events are the served jurisdiction's and carry ids and
states only (what to reload, not what it says). A page reloads what it shows through the JSON
API when an event concerns it, and again each time its stream (re)opens, so a change made
while it was disconnected is never missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from geo311.kernel import live
from geo311.kernel.database import Database
from geo311.kernel.deps import PrincipalDep, SessionDep, SettingsDep
from layers.deps import JurisdictionDep

router = APIRouter()

# Browsers reconnect this long after a dropped stream.
_RETRY_MS = 2000


def hub_of(request: Request) -> live.LiveHub:
    """Return the app's hub, made on first use (an app nobody watches opens no connection)."""
    hub: live.LiveHub | None = getattr(request.app.state, "live_hub", None)
    if hub is None:
        db: Database = request.app.state.db
        url = db.engine.url.set(drivername="postgresql")
        hub = live.LiveHub(url.render_as_string(hide_password=False))
        request.app.state.live_hub = hub
    return hub


@router.get(
    "/api/v1/live",
    tags=["live"],
    summary="Changes to work orders, incidents and day plans, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live_events(
    request: Request,
    principal: PrincipalDep,
    jurisdiction: JurisdictionDep,
    session: SessionDep,
    settings: SettingsDep,
    max_s: Annotated[
        float | None,
        Query(ge=0, le=86400, description="End the stream after this many seconds"),
    ] = None,
) -> StreamingResponse:
    """Stream ``event: <kind>`` / ``data: <json>`` for each committed change: ``work_order``
    (id, action, status, crew_id when a crew was given it), ``incident`` (id, action, status)
    and ``plan`` (day, version, action, crew_ids). A ``: ping`` comment keeps the stream open.

    The stream ends after ``max_s`` seconds (default GEO311_MAPS__LIVE_MAX_S), and the browser
    reconnects: proxies that cut long requests then cut nothing, and a page reloads now and
    then even if an event was lost on the way."""
    del principal  # any staff role: the events say what changed, not what it says
    jurisdiction_id = jurisdiction.id
    # The stream may stay open for hours: give the sign-in check's connection back now.
    session.close()
    hub = hub_of(request)
    ping_s = settings.maps.live_ping_s
    ends_at = time.monotonic() + (settings.maps.live_max_s if max_s is None else max_s)

    async def stream() -> AsyncIterator[str]:
        try:
            async with hub.subscription(jurisdiction_id) as queue:
                yield f"retry: {_RETRY_MS}\n: listening\n\n"
                while (left_s := ends_at - time.monotonic()) > 0:
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout=min(ping_s, left_s))
                    except TimeoutError:
                        yield ": ping\n\n"
                        continue
                    if item is None:  # the hub lost its connection or the client fell behind
                        return
                    yield live.sse(item)
        except TimeoutError:  # the hub could not start listening: the browser retries
            return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
