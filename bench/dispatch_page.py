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
3. **move 10 jobs** — in the page: 10 jobs of the busiest crew selected, "give to crew X"
   previewed, then committed. Timed from the commit click to both crews' routes redrawn
   (drawn from the move's answer, the jobs on the new crew's list; the page then reads the
   board again in the background, not timed here); beside it, the move API's own time
   for the same request, read from the browser's resource timing in the same run (so the
   difference is the page: its reload of the board and the redraw). Target: ≤ 2 s.
   Moves alternate direction (A→B, then B→A) so every run moves the same 10 jobs.

Medians of ``--runs`` runs, min and max beside; ``uptime``'s load before and after.

Usage::

    uv run python bench/dispatch_page.py              # 5,000 jobs, 50 crews, 5 runs
    uv run python bench/dispatch_page.py --quick      # 500 jobs, 10 crews, 3 runs
"""

from __future__ import annotations

import argparse
import gzip
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
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import city_day  # bench/ is not a package: its sibling, found by path

from dispatch.network import lines_from_osm
from geo311.app import create_app
from geo311.kernel import migrate
from geo311.kernel.auth import accounts
from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings, SigninSettings

console = Console()
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


def _move_in_page(page: Any, ids: list[int], to_crew: str) -> tuple[float, float, float]:
    """Preview and commit a move in the page; return (preview s, commit→redrawn s, move API s)."""
    page.evaluate(
        "(ids) => { const s = window.dispatchPage.state; s.selected = new Set(ids); }", ids
    )
    page.locator("#to-crew").select_option(to_crew)
    started = time.perf_counter()
    page.get_by_role("button", name="Preview the move").click()
    page.locator(f'dialog#preview .preview-crew[data-crew="{to_crew}"]').wait_for(timeout=120_000)
    preview_s = time.perf_counter() - started
    page.evaluate("performance.clearResourceTimings()")
    t0 = page.evaluate("performance.now()")
    page.get_by_role("button", name="Commit the move").click()
    page.wait_for_function(
        """([ids, crew, t0]) => {
            const p = window.dispatchPage;
            if (!(p.movedDrawnAt > t0)) return false;
            const on = new Set(p.state.board.routes.find((r) => r.crew === crew)?.stops ?? []);
            return ids.every((id) => on.has(id))
                && ids.every((id) => document.querySelector(
                    `#crew-list > li[data-crew="${crew}"] li[data-job="${id}"]`));
        }""",
        arg=[ids, to_crew, t0],
        timeout=120_000,
        polling="raf",
    )
    timing = page.evaluate(
        """(t0) => {
            const moved = performance.getEntriesByType("resource")
                .find((e) => e.name.includes("/moves") && !e.name.includes("preview"));
            const api = moved ? moved.responseEnd - moved.startTime : -1;
            return [window.dispatchPage.movedDrawnAt - t0, api];
        }""",
        t0,
    )
    return preview_s, timing[0] / 1000, timing[1] / 1000


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
    redraw_s: list[float] = []
    move_api_s: list[float] = []
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
                picked = city_day.pick_move(db)
            finally:
                db.dispose()
            day = city_day.DAY.isoformat()
            with (
                serving(url, Path(data_dir), routing) as base,
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
                ) as client,
            ):
                board_s, board_body = _timed_get(client, f"/api/v1/dispatch/board?date={day}", runs)
                plan_s, plan_body = _timed_get(client, f"/api/v1/plans/{day}", runs)
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    context = browser.new_context(viewport=DESKTOP)
                    page = context.new_page()
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
                        to_crew = picked.to_crew if k % 2 == 0 else picked.from_crew
                        pre, redraw, api = _move_in_page(page, picked.work_order_ids, to_crew)
                        preview_s.append(pre)
                        redraw_s.append(redraw)
                        move_api_s.append(api)
                        console.print(
                            f"run {k + 1}: ready {ready_s[-1]:.2f} s, preview {pre:.2f} s, "
                            f"commit→redrawn {redraw:.2f} s (move API {api:.2f} s)"
                        )
                    browser.close()
        finally:
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
    _row(table, "page: navigation → ready", ready_s, "board + markers + routes + lists")
    _row(table, "move 10 jobs: preview shown", preview_s, "POST …/moves/preview + dialog")
    _row(
        table,
        "move 10 jobs: commit → both routes redrawn",
        redraw_s,
        f"target ≤ {MOVE_TARGET_S:.0f} s: "
        + ("met" if statistics.median(redraw_s) <= MOVE_TARGET_S else "NOT met"),
    )
    _row(table, "  of which the move API (POST …/moves)", move_api_s, "browser resource timing")
    _row(
        table,
        "  the page's own part (reload + redraw)",
        [r - a for r, a in zip(redraw_s, move_api_s, strict=True)],
        "",
    )
    console.print(table)
    console.print(f"after: {_uptime()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
