"""Who may call what: every route of the app × every kind of caller, written down as a table.

The table below is the access policy. A route the app serves without a row here fails the
test (and so does a row for a route that is gone), so adding a route means deciding who may
call it. To add a route: one line in ``MATRIX`` — its "METHOD /path" exactly as the app
declares it, the eight expected answers, and (if "allowed" needs it) a minimal request.

Columns (callers):
    anon   no credentials at all
    own    a crew user of the streets crew, which the sample work order belongs to
    other  a crew user of another crew (water)
    none   a crew user in no crew
    disp   a dispatcher
    plan   a planner
    admin  an admin
    key    an Open311 application: an ``api_key`` (query string), no staff token

Answers:
    ok     allowed: anything but 401/403. Requests are built to stop before they change
           anything (a minimal body gets 422, a made-up id 404, a staff write without a
           version 428), so one demo database serves every cell.
    401    no staff token (``key`` counts: an Open311 key is not a staff credential)
    403    refused: the role may not, a crew user on another crew's work, or an Open311 POST
           without a valid key
    404    let in, and nothing there by design (the caller's crew when it is on none,
           Open311 paths that do not exist)

Every request answered 401 or 403 must store nothing: the whole database is compared before
and after them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from geo311.resident.open311 import service as open311_service
from layers import service as layers_service
from tests.support import (
    give_to_crew,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    work_order_of,
)

CALLERS = ("anon", "own", "other", "none", "disp", "plan", "admin", "key")


@dataclass(frozen=True)
class Req:
    """A minimal request for a route: path values over the defaults, a body, a query."""

    path: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    query: dict[str, str] = field(default_factory=dict)


NOBODY = {"code": "no-such-code"}
ANY = Req()

# Shorthands for the commonest rows (spelled out, column by column, in the docstring above).
PUBLIC = "ok   ok   ok   ok   ok   ok   ok   ok"
STAFF = "401  ok   ok   ok   ok   ok   ok   401"  # every staff role reads
ADMIN = "401  403  403  403  403  403  ok   401"
DISPATCHER = "401  403  403  403  ok   403  ok   401"
DISPATCH_READ = "401  403  403  403  ok   ok   ok   401"  # dispatcher, planner
CREW_ACTS = "401  ok   403  403  ok   403  ok   401"  # the work's own crew, or a dispatcher
NOTHING_THERE = "404  404  404  404  404  404  404  404"

#   route                                                   anon own other none disp plan admin key
MATRIX: dict[str, tuple[str, Req]] = {
    # the app, its documents and pages
    "GET /": (PUBLIC, ANY),
    "GET /healthz": (PUBLIC, ANY),
    "GET /readyz": (PUBLIC, ANY),
    "GET /docs": (PUBLIC, ANY),
    "GET /openapi.json": (PUBLIC, ANY),
    "GET /static/docs/{path}": (PUBLIC, Req(path={"path": "nothing.js"})),
    "GET /static/docs-init.js": (PUBLIC, ANY),
    "GET /media/{key:path}": (PUBLIC, Req(path={"key:path": "public/nothing.jpg"})),
    # the map pages, their data and their files (maps)
    "GET /report": (PUBLIC, ANY),
    "GET /map": (PUBLIC, ANY),
    "GET /api/v1/map/ward": (PUBLIC, Req(query={"lat": "0", "lon": "0"})),
    "GET /api/v1/map/nearby": (PUBLIC, Req(query={"category": "pothole", "lat": "0", "lon": "0"})),
    "GET /api/v1/map/incidents": (PUBLIC, ANY),
    "GET /api/v1/basemap": (PUBLIC, ANY),
    "GET /track/{tracking_id}": (PUBLIC, ANY),
    # the planner's page reads the session cookie only: a bearer token is "not signed in",
    # which is a redirect to /login (followed: the sign-in form). The session matrix
    # (test_role_matrix_session.BY_SESSION) checks the roles: crew users get its 403 page.
    "GET /planner": (PUBLIC, ANY),
    # the crew's page: the same (a bearer token is sent to sign in; the session matrix checks
    # the roles), its service worker, and its JSON: a crew reads its own crew's day, anyone
    # in no crew has none (404), planners are not let in
    "GET /crew": (PUBLIC, ANY),
    "GET /crew-sw.js": (PUBLIC, ANY),
    "GET /api/v1/crew/{day}": ("401  ok   ok   404  404  403  404  401", ANY),
    "GET /api/v1/crew/kept": ("401  ok   ok   ok   ok   403  ok   401", ANY),
    "POST /api/v1/crew/kept": ("401  ok   ok   ok   ok   403  ok   401", Req(data={})),
    "GET /dispatch": (PUBLIC, ANY),  # as /planner: the session matrix checks the roles
    "GET /api/v1/dispatch/board": (DISPATCHER, ANY),
    "GET /follow/confirm": (PUBLIC, ANY),
    "POST /follow/confirm": (PUBLIC, Req(data={})),
    "GET /assets/vendor/{asset_path:path}": (PUBLIC, Req(path={"asset_path:path": "x.js"})),
    "GET /assets/maps/{name}": (PUBLIC, Req(path={"name": "nothing.js"})),
    # reports (intake)
    "POST /api/v1/reports": (PUBLIC, Req(data={})),
    "GET /api/v1/reports/{tracking_id}": (PUBLIC, ANY),
    "POST /api/v1/reports/{tracking_id}/follow": (PUBLIC, Req(json={})),
    "POST /api/v1/reports/{tracking_id}/join": (PUBLIC, Req(data={})),
    "GET /api/v1/categories": (PUBLIC, ANY),
    "GET /api/v1/staff/reports/{tracking_id}": ("401  ok   403  403  ok   403  ok   401", ANY),
    "GET /api/v1/me": (STAFF, ANY),
    # staff sign-in for pages: the form is public; signing in without the form's own token
    # (and Origin) is refused for anyone; signing out with no session just clears the cookie
    "GET /login": (PUBLIC, ANY),
    "POST /login": ("403  403  403  403  403  403  403  403", Req(data={})),
    "POST /logout": (PUBLIC, Req(data={})),
    "GET /api/v1/session": (STAFF, ANY),
    # live changes (a stream: max_s=0 ends it at once, so the test client gets an answer)
    "GET /api/v1/live": (STAFF, Req(query={"max_s": "0"})),
    # duplicates (dedup)
    "GET /api/v1/staff/incidents/{incident_id}/reports": (DISPATCHER, ANY),
    "POST /api/v1/staff/incidents/{incident_id}/merge": (DISPATCHER, Req(json={})),
    "POST /api/v1/staff/reports/{tracking_id}/split": (DISPATCHER, Req(json={})),
    "GET /api/v1/staff/moves/{move_id}": (DISPATCHER, ANY),
    "POST /api/v1/staff/moves/{move_id}/undo": (DISPATCHER, Req(json={})),
    # crews, skills, rules (dispatch)
    "GET /api/v1/skills": (STAFF, ANY),
    "PUT /api/v1/skills/{code}": (ADMIN, Req(json={})),
    "DELETE /api/v1/skills/{code}": (ADMIN, Req(path=NOBODY)),
    "GET /api/v1/crews": (STAFF, ANY),
    "POST /api/v1/crews": (ADMIN, Req(json={})),
    "GET /api/v1/crews/{code}": (STAFF, ANY),
    "PUT /api/v1/crews/{code}": (ADMIN, Req(json={})),
    "DELETE /api/v1/crews/{code}": (ADMIN, Req(path=NOBODY)),
    "PUT /api/v1/staff/{name}/crew": (ADMIN, Req(json={})),
    "GET /api/v1/me/crew": ("401  ok   ok   404  404  404  404  401", ANY),
    "GET /api/v1/dispatch/skill-rules": (STAFF, ANY),
    "PUT /api/v1/dispatch/skill-rules": (ADMIN, Req(json={})),
    "GET /api/v1/dispatch/service-times": (STAFF, ANY),
    "PUT /api/v1/dispatch/service-times/{category_code}": (ADMIN, Req(json={})),
    "GET /api/v1/dispatch/roads": (STAFF, ANY),
    "GET /api/v1/dispatch/queue": (DISPATCH_READ, ANY),
    # the planner's analytics (maps.analytics): read-only, dispatchers and planners
    "GET /api/v1/analytics/wards": (DISPATCH_READ, ANY),
    "GET /api/v1/analytics/wards.{fmt}": (DISPATCH_READ, Req(path={"fmt": "csv"})),
    "GET /api/v1/analytics/trends": (DISPATCH_READ, ANY),
    "GET /api/v1/analytics/hotspots": (DISPATCH_READ, Req(query={"size_m": "1000"})),
    "GET /api/v1/analytics/heat": (DISPATCH_READ, ANY),
    # (allowed, this one runs: the rules again over the queue, which moves no sample data)
    "POST /api/v1/dispatch/queue/assign": (DISPATCHER, ANY),
    # day plans
    "POST /api/v1/plans": (DISPATCHER, ANY),  # no date: 422
    "GET /api/v1/plans/{day}": (DISPATCH_READ, ANY),
    "GET /api/v1/plans/{day}/crews/{code}": ("401  ok   403  403  ok   ok   ok   401", ANY),
    "POST /api/v1/plans/{day}/moves": (DISPATCHER, Req(json={})),
    "POST /api/v1/plans/{day}/moves/preview": (DISPATCHER, Req(json={})),
    "POST /api/v1/plans/{day}/stops/{work_order_id}/lock": (DISPATCHER, Req(json={})),
    "POST /api/v1/plans/{day}/replan": (DISPATCHER, Req(json={})),
    "PUT /api/v1/dispatch/work-orders/{work_order_id}/appointment": (DISPATCHER, Req(json={})),
    "DELETE /api/v1/dispatch/work-orders/{work_order_id}/appointment": (
        DISPATCHER,
        Req(path={"work_order_id": "999999999"}),
    ),
    # work orders and incidents (writes without a version: 428 for whoever is let in)
    "GET /api/v1/work-orders": (STAFF, ANY),
    "GET /api/v1/work-orders/sla-summary": (STAFF, ANY),
    "GET /api/v1/work-orders/{work_order_id}": (STAFF, ANY),
    "POST /api/v1/work-orders/{work_order_id}/transitions": (
        CREW_ACTS,
        Req(json={"to": "in_progress"}),
    ),
    "POST /api/v1/work-orders/{work_order_id}/hold": (CREW_ACTS, Req(json={"reason": "x"})),
    "POST /api/v1/work-orders/{work_order_id}/cant-do": (
        CREW_ACTS,
        Req(json={"reason": "no_access"}),
    ),
    "POST /api/v1/work-orders/{work_order_id}/resume": (CREW_ACTS, Req(json={})),
    "POST /api/v1/work-orders/{work_order_id}/complete": (
        CREW_ACTS,
        Req(data={"resolution_code": "repaired"}),
    ),
    "POST /api/v1/work-orders/{work_order_id}/transfer": (
        DISPATCHER,
        Req(json={"department": "x", "reason": "y"}),
    ),
    "GET /api/v1/incidents/{incident_id}": (STAFF, ANY),
    "POST /api/v1/incidents/{incident_id}/transitions": (
        DISPATCHER,
        Req(json={"to": "cancelled", "reason": "x"}),
    ),
    "GET /api/v1/incidents/{incident_id}/notices": (STAFF, ANY),
    "PUT /api/v1/sla-calendars/{code}": (ADMIN, Req(json={})),
    "PUT /api/v1/categories/{code}/sla-calendar": (ADMIN, Req(json={})),
    # whole categories (work orders, dispatch, Open311 parts): the admin's
    "GET /api/v1/admin/categories": (ADMIN, ANY),
    "GET /api/v1/admin/categories/{code}": (ADMIN, Req(path=NOBODY)),
    "PUT /api/v1/admin/categories/{code}": (ADMIN, Req(json={})),
    # notices: the resident's signed links are the credential; webhooks are the admin's
    "GET /notices/answer": (PUBLIC, ANY),
    "POST /notices/answer": (PUBLIC, Req(data={})),
    "POST /api/v1/notices/answer": (PUBLIC, Req(json={})),
    "GET /notices/preferences": (PUBLIC, ANY),
    "POST /notices/preferences": (PUBLIC, Req(data={})),
    "POST /notices/unsubscribe": (PUBLIC, Req(data={})),
    "POST /api/v1/webhooks": (ADMIN, Req(json={})),
    "GET /api/v1/webhooks": (ADMIN, ANY),
    "DELETE /api/v1/webhooks/{endpoint_id}": (ADMIN, ANY),
    # The dev mail catcher (on: no database URL in these settings) opens for an admin, or a
    # direct loopback request (the test client is not one); an Open311 key is no staff token.
    "GET /dev/mail": ("403  403  403  403  403  403  ok   403", ANY),
    "GET /dev/mail/{key}": ("403  403  403  403  403  403  404  403", ANY),  # no such mail
    # Open311 GeoReport v2: reading is public; creating needs an application's key
    "GET /open311/v2/discovery.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/services.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/services/{service_code}.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/requests.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/requests/{service_request_id}.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/tokens/{token}.{fmt}": (PUBLIC, ANY),
    "GET /open311/v2/servicerequestupdates.{fmt}": (PUBLIC, ANY),
    "POST /open311/v2/requests.{fmt}": (
        "403  403  403  403  403  403  403  ok",
        Req(data={"service_code": "pothole"}),
    ),
    # FixMyStreet's comments posted back: an application's key, like creating a request
    "POST /open311/v2/servicerequestupdates.{fmt}": (
        "403  403  403  403  403  403  403  ok",
        Req(data={"service_request_id": "NOSUCHREQ"}),
    ),
    "GET /open311/v2/{path:path}": (NOTHING_THERE, ANY),
    "POST /open311/v2/{path:path}": (NOTHING_THERE, Req(data={})),
    "PUT /open311/v2/{path:path}": (NOTHING_THERE, ANY),
    "PATCH /open311/v2/{path:path}": (NOTHING_THERE, ANY),
    "DELETE /open311/v2/{path:path}": (NOTHING_THERE, ANY),
}


def served_routes(app: FastAPI) -> set[str]:
    """Return "METHOD /path" for every route the app serves (HEAD aside: it mirrors GET).

    Routers included into the app may be kept as one entry that expands into its routes
    (newer FastAPI), so both shapes are walked; a mounted app counts as GET of any path.
    """
    out: set[str] = set()
    for route in app.routes:
        expand = getattr(route, "effective_route_contexts", None)
        items = (
            [(c.path, c.methods) for c in expand()]
            if expand is not None
            else [(getattr(route, "path", ""), getattr(route, "methods", None))]
        )
        for path, methods in items:
            if methods is None:  # a Mount
                out.add(f"GET {path}/{{path}}")
                continue
            out.update(f"{m} {path}" for m in methods if m != "HEAD")
    return out


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    query: dict[str, dict[str, str]]
    values: dict[str, str]


@pytest.fixture
def world(demo_db: Database, tmp_path: Path) -> Iterator[World]:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "r@example.org"}])
    work_order_id = work_order_of(demo_db, incident_id)
    give_to_crew(demo_db, work_order_id, "streets")
    with demo_db.session() as s:
        jurisdiction = layers_service.get_jurisdiction(s, "demo")
        assert jurisdiction is not None
        # The city named: on Citus a read of every shard and then a write to a reference
        # table (the key) cannot share a transaction.
        tracking_id = s.execute(
            text("SELECT tracking_id FROM reports WHERE jurisdiction_id = :j AND incident_id = :i"),
            {"i": incident_id, "j": jurisdiction.id},
        ).scalar_one()
        key = open311_service.create_api_key(
            s, jurisdiction_id=jurisdiction.id, application="matrix"
        )

    def bearer(role: str, name: str, crew: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {staff_token(demo_db, role, name, crew=crew)}"}

    headers = {
        "anon": {},
        "own": bearer("crew", "sam", "streets"),
        "other": bearer("crew", "wanda", "water"),
        "none": bearer("crew", "nadia"),
        "disp": bearer("dispatcher", "dora"),
        "plan": bearer("planner", "pat"),
        "admin": bearer("admin", "ada"),
        "key": {},
    }
    values = {
        "work_order_id": str(work_order_id),
        "incident_id": str(incident_id),
        "tracking_id": tracking_id,
        "service_request_id": tracking_id,
        "code": "streets",
        "category_code": "pothole",
        "service_code": "pothole",
        "day": "2026-06-01",
        "name": "nadia",
        "move_id": "999999999",
        "endpoint_id": "999999999",
        "token": "no-such-token",
        "key": "no-such-mail",
        "fmt": "json",
        "path": "nothing",
        "path:path": "nothing",
    }
    settings = Settings(data_dir=tmp_path, jurisdiction="demo")
    with TestClient(pooled_app(settings, db=demo_db)) as client:
        yield World(client, headers, {"key": {"api_key": key}}, values)


def _call(world: World, route: str, caller: str, req: Req) -> int:
    method, template = route.split(" ", 1)
    path = template
    for name, value in (world.values | req.path).items():
        path = path.replace("{" + name + "}", value)
    kwargs: dict[str, Any] = {
        "headers": world.headers[caller],
        "params": world.query.get(caller, {}) | req.query,
    }
    if req.json is not None:
        kwargs["json"] = req.json
    if req.data is not None:
        kwargs["data"] = req.data
    return int(world.client.request(method, path, **kwargs).status_code)


def _fits(expected: str, status: int) -> bool:
    if expected == "ok":
        return status not in (401, 403)
    return status == int(expected)


def _fingerprint(db: Database) -> dict[str, str]:
    """Return a digest of every table's rows: equal digests, nothing was stored."""
    with db.session() as s:
        tables = s.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT LIKE 'procrastinate%' ORDER BY 1"
            )
        ).all()
        return {
            t: s.execute(
                text(
                    "SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                    f'FROM "{t}" x'
                )
            ).scalar_one()
            for t in tables
        }


def test_the_table_covers_every_route_the_app_serves(world: World) -> None:
    app = world.client.app
    assert isinstance(app, FastAPI)
    served = served_routes(app)
    assert sorted(served - set(MATRIX)) == [], "routes with no row: decide who may call them"
    assert sorted(set(MATRIX) - served) == [], "rows for routes the app no longer serves"
    for route, (expected, _) in MATRIX.items():
        assert len(expected.split()) == len(CALLERS), route


def test_every_route_answers_every_caller_as_the_table_says(
    world: World, demo_db: Database
) -> None:
    cells = [
        (route, caller, answer, req)
        for route, (row, req) in MATRIX.items()
        for caller, answer in zip(CALLERS, row.split(), strict=True)
    ]
    # Refusals first, on an untouched database: each must leave every table as it was.
    refused = [c for c in cells if c[2] in ("401", "403")]
    allowed = [c for c in cells if c[2] not in ("401", "403")]
    before = _fingerprint(demo_db)
    wrong = [_check(world, *cell) for cell in refused]
    after = _fingerprint(demo_db)
    assert sorted(t for t in before if before[t] != after[t]) == [], "a refusal stored something"
    wrong += [_check(world, *cell) for cell in allowed]
    mismatches = [w for w in wrong if w]
    assert mismatches == [], "\n" + "\n".join(mismatches)


def _check(world: World, route: str, caller: str, answer: str, req: Req) -> str:
    """Return "" when the route answers the caller as expected, else a line saying how not."""
    status = _call(world, route, caller, req)
    return "" if _fits(answer, status) else f"{route:62} {caller:6} wants {answer:4} got {status}"
