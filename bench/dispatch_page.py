"""Dispatcher's page: what it loads and how fast a 10-job move is redrawn, on a generated city.

The city is bench/city_day.py's (Monaco's roads, seeded): 50 crews and, by default, 5,000 open
work orders, planned for the day with the straight-line travel-time provider. The app is served
on it by uvicorn on a loopback port, and in one process the script measures:

1. **board** — ``GET /api/v1/dispatch/board`` (the page's one request: every open work order,
   the crews, the day's routes): the time the server takes for the answer, and its size (plain
   and gzipped). Baseline: ``GET /api/v1/plans/{day}`` (the plan API the page would otherwise
   have to read besides the work-order lists); the ratio is the board's cost over it.
2. **page ready** — Chromium (Debian's, headless, 1440×900) from navigation to the page's
   ``data-state=ready`` (board fetched, markers clustered, routes and lists drawn).
3. **move 10 jobs** — in the page: 10 jobs of the busiest crew (A) selected, "give to crew
   B" previewed, then committed. The 10 are chosen beforehand by the what-if preview (POST
   …/moves/preview): of A's stops that B may take (same skills, B's wards), only jobs the
   preview places on B's route are kept, and candidates are tried (B: the crews of A's
   skills, most free time first) until 10 are placed — so the move is a full move onto a
   route, not jobs the receiving day leaves out. Timed from the commit button's click handler
   to every job the committed plan places on B drawn there (on B's route and list, with its
   ETA, its marker in B's colour) and gone from A's; each run prints how many of the 10 the
   commit placed and how many it left out (the solver runs again at commit, so a job the
   preview placed may still be left out; the target is for the placed ones). Beside it, the
   move API's own time for the same request, read from the browser's resource timing in the
   same run (so the difference is the page's own part). Target: ≤ 2 s. Moves alternate
   direction (A→B, then B→A) so every run moves the same 10 jobs.
4. **live: a crew completes a job** — through the API, as the crew; timed from the API's
   answer (the change is announced at its COMMIT) to the job's marker gone from the page.

Moves and live events are each measured twice in every run, in the same page: **whole**, the
baseline — the page reads the whole board again and redraws every marker, list and line (how
it did before) — and **incremental**: a move is drawn from its own answer, and the page then
reads (as a live event does) only the jobs and crews that changed, gathered for 250 ms, and
redraws only those. Beside each, the longest main-thread block (PerformanceObserver
``longtask``) from the click or event to 1.5 s after the redraw: what a dispatcher feels as a
frozen page. The two modes swap order every run.

Medians of ``--runs`` runs, min and max beside; ``uptime``'s load before and after.

Usage::

    uv run python bench/dispatch_page.py              # 5,000 jobs, 50 crews, 5 runs
    uv run python bench/dispatch_page.py --quick      # 500 jobs, 10 crews, 3 runs
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import city_day  # bench/ is not a package: its sibling, found by path

from dispatch import service as dispatch_service
from dispatch.network import lines_from_osm
from geo311.app import create_app
from geo311.kernel import migrate
from geo311.kernel.auth import accounts
from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings, SigninSettings

console = Console(width=150)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
DESKTOP: Any = {"width": 1440, "height": 900}
NAME, PASSWORD = "bench-dispatcher", "bench dispatcher password"
MOVE_TARGET_S = 2.0


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


@contextmanager
def serving(url: str, data_dir: Path, routing: RoutingSettings) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = Settings(data_dir=data_dir, port=port, jurisdiction=city_day.SLUG, routing=routing)
    db = Database.connect(url, pool_size=4)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, db=db), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


def _timed_get(client: httpx.Client, path: str, runs: int) -> tuple[list[float], bytes]:
    times, body = [], b""
    for _ in range(runs):
        started = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - started)
        r.raise_for_status()
        body = r.content
    return times, body


def _row(table: Table, label: str, values: Sequence[float], *extra: str) -> None:
    table.add_row(
        label,
        f"{statistics.median(values):.3f}",
        f"{min(values):.3f}–{max(values):.3f}",
        *extra,
    )


# Every long task the page runs, from its start (the bench reads them per measured window).
LONGTASKS = """
window.__longtasks = [];
new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
"""
SETTLE_S = 1.5


def _longest_block(page: Any, t0: float) -> float:
    """Return the longest main-thread task (s) since page time ``t0`` (ms)."""
    ms = page.evaluate(
        "(t0) => Math.max(0, ...window.__longtasks.filter(([s]) => s >= t0).map(([, d]) => d))",
        t0,
    )
    return float(ms) / 1000


def _settle(page: Any) -> None:
    """Wait until the page has read and drawn what the last change left (live events too),
    and its main thread runs frames again (the cluster adds markers in chunks, between
    frames, for a while after a whole redraw)."""
    time.sleep(SETTLE_S)
    page.wait_for_load_state("networkidle")
    page.evaluate(
        """() => new Promise((done) => {
            let calm = 0, last = performance.now();
            const until = last + 60000;
            const tick = (now) => {
                calm = now - last < 250 ? calm + 1 : 0;
                last = now;
                if (calm >= 5 || now > until) done(); else requestAnimationFrame(tick);
            };
            requestAnimationFrame(tick);
        })"""
    )


def _page_says(page: Any) -> str:
    """Return the page's status lines (what it said when a wait ran out)."""
    said = page.evaluate(
        "() => ['dispatch-status', 'preview-status', 'live-status']"
        ".map((id) => document.getElementById(id)?.textContent)"
    )
    return str(said)


def _pick_placed(
    client: httpx.Client, db: Database, jid: int, day: str, *, source: str, jobs: int
) -> city_day.Move:
    """Return ``jobs`` of ``source``'s stops and a receiving crew whose route the what-if
    preview places every one of them on.

    Receivers: the crews with ``source``'s skills, most free time first; candidates: the
    source's unlocked stops in the receiver's wards, in visiting order. Each preview keeps
    the jobs it placed on the receiver's route and tops up with the next candidates, until
    ``jobs`` are placed or the candidates run out (then the next receiver)."""
    plan = client.get(f"/api/v1/plans/{day}").raise_for_status().json()
    board = client.get(f"/api/v1/dispatch/board?date={day}").raise_for_status().json()
    ward = {j["id"]: j["ward"] for j in board["jobs"]}
    free = {c["code"]: c["free_s"] for c in board["crews"] if c["working"]}
    with db.session() as session:
        crews = {c.code: c for c in dispatch_service.list_crews(session, jurisdiction_id=jid)}
    stops = next(r["stops"] for r in plan["routes"] if r["crew"] == source)
    receivers = sorted(
        (
            c
            for c in crews.values()
            if c.code != source and c.code in free and set(c.skills) == set(crews[source].skills)
        ),
        key=lambda c: (-free[c.code], c.code),
    )
    tried = 0
    for crew in receivers:
        territory = set(crew.territory)
        pool = [
            s["work_order_id"]
            for s in stops
            if not s["locked"] and ward.get(s["work_order_id"]) in territory
        ]
        chosen: list[int] = []
        at = 0
        while at < len(pool):
            trial = chosen + pool[at : at + jobs - len(chosen)]
            at += jobs - len(chosen)
            answer = client.post(
                f"/api/v1/plans/{day}/moves/preview",
                json={
                    "plan_version": plan["version"],
                    "work_order_ids": trial,
                    "to_crew": crew.code,
                },
            ).raise_for_status()
            tried += 1
            on = {
                s["work_order_id"]
                for r in answer.json()["after"]
                if r["crew"] == crew.code
                for s in r["stops"]
            }
            chosen = [wo for wo in trial if wo in on]
            if len(chosen) == jobs:
                console.print(
                    f"move: {jobs} jobs {source} → {crew.code} ({free[crew.code] / 3600:.1f} h "
                    f"free), all placed by the preview ({tried} previews)"
                )
                return city_day.Move(chosen, source, crew.code)
    raise RuntimeError(f"no crew's route takes {jobs} of {source}'s jobs ({tried} previews)")


@dataclass
class Moved:
    """One move in the page, timed."""

    preview_s: float
    redraw_s: float
    api_s: float
    block_s: float
    click_s: float
    placed: int
    left_out: int


def _move_in_page(page: Any, ids: list[int], from_crew: str, to_crew: str, *, whole: bool) -> Moved:
    """Preview and commit a move in the page; return its times and how many jobs it placed.

    Redrawn: every job the committed plan places on ``to_crew``'s route is on that route and
    in that crew's list with its ETA, its marker in the crew's colour, and on neither the
    route nor the list of ``from_crew`` (a job left out is drawn with its reason, and not
    waited for). Timed from the commit button's click handler: Playwright's own click (its
    checks that the button is visible, stable and enabled, over several frames) took seconds
    on a loaded machine and is no part of the page; it is reported on its own line."""
    page.evaluate(
        "([ids, whole]) => { const p = window.dispatchPage; p.whole = whole;"
        " p.state.selected = new Set(ids); p.moved = null; }",
        [ids, whole],
    )
    page.locator("#to-crew").select_option(to_crew)
    started = time.perf_counter()
    page.get_by_role("button", name="Preview the move").click()
    page.locator(f'dialog#preview .preview-crew[data-crew="{to_crew}"]').wait_for(timeout=120_000)
    preview_s = time.perf_counter() - started
    page.evaluate("performance.clearResourceTimings()")
    t0 = page.evaluate("performance.now()")
    page.get_by_role("button", name="Commit the move").click()
    seen = page.evaluate(
        """([ids, from, to, t0]) => new Promise((done) => {
            const p = window.dispatchPage;
            const row = (crew, id) => document.querySelector(
                `#crew-list > li[data-crew="${crew}"] li[data-job="${id}"]`);
            const route = (crew) => new Set(
                p.state.board.routes.find((r) => r.crew === crew)?.stops ?? []);
            const colour = p.state.board.crews.find((c) => c.code === to).colour;
            const look = () => {
                if (performance.now() - t0 > 120000) return done(null);
                if (!(p.movedDrawnAt > t0) || !p.moved) return requestAnimationFrame(look);
                const planned = new Set((p.moved.routes.find((r) => r.crew === to)?.stops ?? [])
                    .map((s) => s.work_order_id));
                const placed = ids.filter((id) => planned.has(id));
                const onTo = route(to), onFrom = route(from);
                const drawn = placed.every((id) => {
                    const html = p.state.markers.get(id)?.options.icon.options.html;
                    return onTo.has(id) && !onFrom.has(id) && !row(from, id)
                        && row(to, id)?.querySelector(".eta")
                        && html?.style.getPropertyValue("--crew").toLowerCase()
                            === colour.toLowerCase();
                });
                if (drawn) done([performance.now(), placed.length]);
                else requestAnimationFrame(look);
            };
            look();
        })""",
        [ids, from_crew, to_crew, t0],
    )
    if seen is None:
        raise RuntimeError(f"the move was not drawn in 120 s; the page says: {_page_says(page)}")
    timing = page.evaluate(
        """(t0) => {
            const moved = performance.getEntriesByType("resource")
                .find((e) => e.name.includes("/moves") && !e.name.includes("preview"));
            const api = moved ? moved.responseEnd - moved.startTime : -1;
            const p = window.dispatchPage;
            return [api, p.committedAt - t0, p.committedAt];
        }""",
        t0,
    )
    _settle(page)
    return Moved(
        preview_s=preview_s,
        redraw_s=(seen[0] - timing[2]) / 1000,
        api_s=timing[0] / 1000,
        block_s=_longest_block(page, t0),
        click_s=timing[1] / 1000,
        placed=int(seen[1]),
        left_out=len(ids) - int(seen[1]),
    )


def _crew_client(base: str, db: Database, jid: int, crew: str) -> httpx.Client:
    """Return an API client signed in as a member of ``crew``."""
    with db.session() as session:
        token = auth_service.create_token(session, name=f"bench-crew-{crew}", role="crew")
        dispatch_service.set_membership(
            session, jurisdiction_id=jid, user_name=f"bench-crew-{crew}", crew_code=crew
        )
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 60)).save(buf, "JPEG")
    return buf.getvalue()


def _complete_live(page: Any, crew: httpx.Client, job: int, *, whole: bool) -> tuple[float, float]:
    """The crew starts, then completes ``job`` through the API; return (s from the completion's
    answer to the marker gone from the page, longest main-thread block s)."""
    page.evaluate("(whole) => { window.dispatchPage.whole = whole; }", whole)
    version = crew.get(f"/api/v1/work-orders/{job}").raise_for_status().json()["version"]
    r = crew.post(
        f"/api/v1/work-orders/{job}/transitions",
        json={"to": "in_progress", "expected_version": version},
    ).raise_for_status()
    _settle(page)
    page.evaluate(
        """(id) => {
            const p = window.dispatchPage;
            p.goneAt = 0;
            const look = () => {
                if (!p.state.markers.has(id)) p.goneAt = Date.now();
                else requestAnimationFrame(look);
            };
            look();
        }""",
        job,
    )
    t0 = page.evaluate("performance.now()")
    r = crew.post(
        f"/api/v1/work-orders/{job}/complete",
        files={"photo": ("after.jpg", _photo(), "image/jpeg")},
        data={
            "resolution_code": "repaired",
            "note": "bench",
            "expected_version": str(r.json()["version"]),
        },
    ).raise_for_status()
    answered = time.time()
    page.wait_for_function("() => window.dispatchPage.goneAt > 0", timeout=120_000, polling=100)
    gone = page.evaluate("window.dispatchPage.goneAt") / 1000
    _settle(page)
    return max(0.0, gone - answered), _longest_block(page, t0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--crews", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="500 jobs, 10 crews, 3 runs")
    parser.add_argument("--time-limit", type=float, default=10.0, help="day plan solver, s")
    parser.add_argument("--seed", type=int, default=311)
    args = parser.parse_args(argv)
    jobs = args.jobs or (500 if args.quick else 5000)
    crews = args.crews or (10 if args.quick else 50)
    runs = args.runs or (3 if args.quick else 5)
    routing = RoutingSettings(time_limit_s=args.time_limit)
    console.print(f"before: {_uptime()}")
    lines = lines_from_osm(str(city_day.PBF))
    city = city_day.generate(
        lines, city_day.read_poly(city_day.POLY), jobs=jobs, crews=crews, seed=args.seed
    )
    from playwright.sync_api import sync_playwright

    board_s: list[float] = []
    plan_s: list[float] = []
    ready_s: list[float] = []
    preview_s: list[float] = []
    modes = ("incremental", "whole")
    redraw_s: dict[str, list[float]] = {m: [] for m in modes}
    move_api_s: dict[str, list[float]] = {m: [] for m in modes}
    move_block_s: dict[str, list[float]] = {m: [] for m in modes}
    placed: dict[str, list[int]] = {m: [] for m in modes}
    live_s: dict[str, list[float]] = {m: [] for m in modes}
    live_block_s: dict[str, list[float]] = {m: [] for m in modes}
    partial_s: list[float] = []
    click_s: list[float] = []
    with city_day.server() as srv, tempfile.TemporaryDirectory() as data_dir:
        name = f"dpage_{uuid.uuid4().hex[:8]}"
        srv.create(name)
        try:
            url = srv.url(name)
            migrate.upgrade(url)
            db = Database.connect(url, pool_size=2)
            try:
                started = time.perf_counter()
                with db.session() as session:
                    jid = city_day.store_city(session, city)
                    cheap = Passwords(SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024))
                    accounts.create_user(
                        session,
                        name=NAME,
                        role="dispatcher",
                        password_hash=cheap.hash(PASSWORD),
                        jurisdiction_id=jid,
                    )
                    token = auth_service.create_token(session, name="bench-api", role="dispatcher")
                measure, _ = city_day.day_plan(db, routing)
                console.print(
                    f"city: {len(city.jobs)} jobs, {len(city.crews)} crews, stored and planned in "
                    f"{time.perf_counter() - started:.0f} s ({measure.placed} placed)"
                )
                busiest = city_day.pick_move(db).from_crew
            except BaseException:
                db.dispose()
                raise
            # db stays open for the crews' tokens below; disposed at the end.
            day = city_day.DAY.isoformat()
            with (
                serving(url, Path(data_dir), routing) as base,
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
                ) as client,
            ):
                picked = _pick_placed(client, db, jid, day, source=busiest, jobs=city_day.MOVE_JOBS)
                board_s, board_body = _timed_get(client, f"/api/v1/dispatch/board?date={day}", runs)
                plan_s, plan_body = _timed_get(client, f"/api/v1/plans/{day}", runs)
                # What a live event or a move reads now: two crews' jobs and routes.
                pair = f"crew={picked.from_crew}&crew={picked.to_crew}"
                partial_s, partial_body = _timed_get(
                    client, f"/api/v1/dispatch/board?date={day}&{pair}", runs
                )
                # Jobs crews will complete live: on other crews' routes, one per measure.
                board_json = json.loads(board_body)
                others = [
                    j
                    for j in board_json["jobs"]
                    if j["seq"] is not None
                    and j["crew"] not in (picked.from_crew, picked.to_crew)
                    and j["status"] in ("assigned", "scheduled")
                ]
                crew_of = {j["id"]: j["crew"] for j in others}
                live_jobs = [j["id"] for j in others[: 2 * runs]]
                crews_live = {
                    c: _crew_client(base, db, jid, c) for c in {crew_of[j] for j in live_jobs}
                }
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    context = browser.new_context(viewport=DESKTOP)
                    context.add_init_script(LONGTASKS)
                    page = context.new_page()
                    page.on("pageerror", lambda e: console.print(f"[red]page error: {e}"))
                    page.goto(f"{base}/login?next=/dispatch?date={day}")
                    page.get_by_label("Name").fill(NAME)
                    page.get_by_label("Password").fill(PASSWORD)
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_url("**/dispatch?date=*")
                    for k in range(runs):
                        started = time.perf_counter()
                        page.goto(f"{base}/dispatch?date={day}")
                        page.wait_for_selector(
                            "#dispatch-map[data-state=ready]", state="attached", timeout=120_000
                        )
                        ready_s.append(time.perf_counter() - started)
                        _settle(page)
                        order = modes if k % 2 == 0 else modes[::-1]
                        for n, mode in enumerate(order):
                            ends = (picked.from_crew, picked.to_crew)
                            giver, taker = ends if n % 2 == 0 else ends[::-1]
                            moved = _move_in_page(
                                page, picked.work_order_ids, giver, taker, whole=mode == "whole"
                            )
                            preview_s.append(moved.preview_s)
                            redraw_s[mode].append(moved.redraw_s)
                            move_api_s[mode].append(moved.api_s)
                            move_block_s[mode].append(moved.block_s)
                            placed[mode].append(moved.placed)
                            click_s.append(moved.click_s)
                            job = live_jobs[2 * k + n]
                            gone, live_block = _complete_live(
                                page, crews_live[crew_of[job]], job, whole=mode == "whole"
                            )
                            live_s[mode].append(gone)
                            live_block_s[mode].append(live_block)
                            console.print(
                                f"run {k + 1} {mode} {giver}→{taker}: ready {ready_s[-1]:.2f} s,"
                                f" preview {moved.preview_s:.2f} s; {moved.placed} placed, "
                                f"{moved.left_out} left out; commit→placed drawn "
                                f"{moved.redraw_s:.2f} s (move API {moved.api_s:.2f} s, "
                                f"longest block {moved.block_s:.2f} s); live completion → "
                                f"marker gone {gone:.2f} s (longest block {live_block:.2f} s)"
                            )
                    browser.close()
                for c in crews_live.values():
                    c.close()
        finally:
            db.dispose()
            srv.drop(name)
    table = Table(title=f"Dispatcher's page: {jobs} open jobs, {crews} crews, median of {runs}")
    for col in ("what", "median s", "min–max s", "size / note"):
        table.add_column(col, justify="left" if col in ("what", "size / note") else "right")
    kb = len(board_body) / 1024
    gz = len(gzip.compress(board_body)) / 1024
    _row(
        table,
        "board: GET /api/v1/dispatch/board",
        board_s,
        f"{kb:,.0f} KiB ({gz:,.0f} KiB gzipped); "
        f"{statistics.median(board_s) / statistics.median(plan_s):.1f}× the plan API",
    )
    _row(
        table,
        "  baseline: GET /api/v1/plans/{day}",
        plan_s,
        f"{len(plan_body) / 1024:,.0f} KiB",
    )
    _row(
        table,
        "  partial: two crews' jobs and routes",
        partial_s,
        f"{len(partial_body) / 1024:,.0f} KiB; what a move or live event reads now",
    )
    _row(table, "page: navigation → ready", ready_s, "board + markers + routes + lists")
    _row(table, "move 10 jobs: preview shown", preview_s, "POST …/moves/preview + dialog")
    inc, whole = statistics.median(redraw_s["incremental"]), statistics.median(redraw_s["whole"])
    for mode in modes:
        note = (
            f"target ≤ {MOVE_TARGET_S:.0f} s: "
            + ("met" if statistics.median(redraw_s[mode]) <= MOVE_TARGET_S else "NOT met")
            + (f"; {whole / inc:.1f}× faster than whole" if mode == "incremental" else "; baseline")
        )
        _row(
            table,
            f"move 10 jobs, {mode}: commit → placed jobs drawn on B, gone from A",
            redraw_s[mode],
            note,
        )
        _row(
            table,
            "  jobs the commit placed on B (of 10)",
            placed[mode],
            "per run: " + ", ".join(str(n) for n in placed[mode]),
        )
        _row(table, "  of which the move API (POST …/moves)", move_api_s[mode], "resource timing")
        _row(
            table,
            "  the page's own part",
            [r - a for r, a in zip(redraw_s[mode], move_api_s[mode], strict=True)],
            "",
        )
        _row(table, "  longest main-thread block", move_block_s[mode], "longtask, to +1.5 s")
    _row(table, "  (Playwright's click → the page's handler)", click_s, "not in the above")
    live_inc, live_whole = (statistics.median(live_s[m]) for m in modes)
    for mode in modes:
        note = (
            f"{live_whole / live_inc:.1f}× faster than whole"
            if mode == "incremental"
            else "baseline"
        )
        _row(table, f"live, {mode}: crew completes → marker gone", live_s[mode], note)
        _row(table, "  longest main-thread block", live_block_s[mode], "longtask, to +1.5 s")
    console.print(table)
    console.print(f"after: {_uptime()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
