"""Open311 API cost against its baselines, on the demo city in a throwaway PostGIS.

    uv run python bench/open311.py [--runs 7]

Prints one table: the median wall time of each Open311 call next to its baseline, the two run
in alternation in the same process. GET requests is set against the same rows read with plain
SQL (no rendering); POST requests against the same report sent to the report API
(/api/v1/reports), which runs the same intake. Calls go through the ASGI app in process
(TestClient), so no network is timed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from fixtures.demo_city import PHOTO_WARDS
from fixtures.load import load_demo
from geo311.app import create_app
from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.settings import Settings
from geo311.resident.open311 import service as open311_service

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
WINDOW = {"start_date": "2026-05-01T00:00:00Z", "end_date": "2026-06-01T12:00:00Z"}
ROWS_SQL = text(
    "SELECT r.tracking_id, i.status, r.category_code, c.name, r.description, r.reported_at, "
    "greatest(i.updated_at, r.created_at), i.due_at, r.address, ST_Y(r.geom), ST_X(r.geom) "
    "FROM reports r JOIN incidents i ON i.jurisdiction_id = r.jurisdiction_id "
    "AND i.id = r.incident_id JOIN service_categories c ON c.jurisdiction_id = r.jurisdiction_id "
    "AND c.code = r.category_code WHERE r.reported_at BETWEEN :s AND :e "
    "ORDER BY r.reported_at DESC, r.id DESC LIMIT 1000"
)


def _ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def medians_ms(
    ours: Callable[[], object], baseline: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Return the median times of both calls, run in alternation so that load from other
    processes falls on both alike."""
    ours(), baseline()  # warm up
    pairs = [(_ms(ours), _ms(baseline)) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (median)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="geo311-bench-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg")
    cluster.start()
    try:
        cluster.ensure_database("bench")
        migrate.upgrade(cluster.url("bench"))
        db = Database.connect(cluster.url("bench"), pool_size=4)
        load_demo(db, now=NOW)
        settings = Settings(data_dir=root / "data", jurisdiction="demo")
        with db.session() as s:
            jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
            key = open311_service.create_api_key(s, jurisdiction_id=jid, application="bench")
            lat, lon = s.execute(
                text(
                    "SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                    "FROM wards LIMIT 1"
                )
            ).one()
            rows = len(
                s.execute(ROWS_SQL, {"s": WINDOW["start_date"], "e": WINDOW["end_date"]}).all()
            )
        photo_name = sorted(PHOTO_WARDS)[0]
        photo = (PHOTOS / photo_name).read_bytes()

        def plain_sql() -> None:
            with db.session() as s:
                s.execute(ROWS_SQL, {"s": WINDOW["start_date"], "e": WINDOW["end_date"]}).all()

        with TestClient(create_app(settings, db=db)) as client:

            def get(fmt: str, **extra: str) -> Callable[[], object]:
                def call() -> None:
                    resp = client.get(f"/open311/v2/requests.{fmt}", params={**WINDOW, **extra})
                    assert resp.status_code == 200, resp.text

                return call

            def post_open311(with_photo: bool) -> Callable[[], object]:
                def call() -> None:
                    data = {"api_key": key, "service_code": "graffiti"}
                    if not with_photo:
                        data |= {"lat": str(lat), "long": str(lon)}
                    files = {"media": (photo_name, photo, "image/jpeg")} if with_photo else None
                    resp = client.post("/open311/v2/requests.xml", data=data, files=files)
                    assert resp.status_code == 200, resp.text

                return call

            def post_report_api(with_photo: bool) -> Callable[[], object]:
                def call() -> None:
                    data = {"category": "graffiti"}
                    if not with_photo:
                        data |= {"lat": str(lat), "lon": str(lon)}
                    files = {"photo": (photo_name, photo, "image/jpeg")} if with_photo else None
                    resp = client.post("/api/v1/reports", data=data, files=files)
                    assert resp.status_code == 201, resp.text

                return call

            cases: list[tuple[str, Callable[[], object], str, Callable[[], object]]] = [
                (f"GET requests.xml ({rows} rows)", get("xml"), "plain SQL, same rows", plain_sql),
                (
                    f"GET requests.json ({rows} rows)",
                    get("json"),
                    "plain SQL, same rows",
                    plain_sql,
                ),
                (
                    f"GET requests.xml?extensions=true ({rows} rows)",
                    get("xml", extensions="true"),
                    "plain SQL, same rows",
                    plain_sql,
                ),
                (
                    "POST requests.xml (pin, no photo)",
                    post_open311(False),
                    "POST /api/v1/reports (pin)",
                    post_report_api(False),
                ),
                (
                    "POST requests.xml (media photo, GPS)",
                    post_open311(True),
                    "POST /api/v1/reports (photo)",
                    post_report_api(True),
                ),
            ]
            print(f"median of {args.runs} runs, ms (demo city, in-process ASGI, embedded PostGIS)")
            print("| case | ms | baseline | ms | ratio |\n|---|---:|---|---:|---:|")
            for name, call, base_name, base in cases:
                ours, theirs = medians_ms(call, base, args.runs)
                print(f"| {name} | {ours:.1f} | {base_name} | {theirs:.1f} | {ours / theirs:.2f} |")
        db.dispose()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
