"""A report whose photo waits for decode memory holds no database connection meanwhile: the
photo is decoded before the report's session opens, so a burst of big uploads cannot drain
the pool for everyone else."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from geo311.kernel.database import Database
from geo311.kernel.media.uploads import gate_for
from geo311.kernel.settings import MediaSettings, Settings
from tests.geo311.dedup_support import quiet_point
from tests.support import jpeg, pooled_app


def test_a_report_waiting_for_decode_memory_holds_no_connection(
    demo_db: Database, tmp_path: Path
) -> None:
    # One decode at a time, a long wait: the test holds the only slot.
    media = MediaSettings(max_concurrent_decodes=1, decode_wait_s=30)
    settings = Settings(data_dir=tmp_path, media=media)
    gate = gate_for(media)
    lon, lat = quiet_point(demo_db)
    answers: list[int] = []

    with TestClient(pooled_app(settings, db=demo_db)) as client:

        def post() -> None:
            resp = client.post(
                "/api/v1/reports",
                data={"category": "pothole", "lat": str(lat), "lon": str(lon)},
                files={"photo": ("hole.jpg", jpeg(), "image/jpeg")},
            )
            answers.append(resp.status_code)

        with gate.hold(1):
            sender = threading.Thread(target=post)
            sender.start()
            deadline = time.monotonic() + 20
            while gate.held_bytes == 1 and not gate._line and time.monotonic() < deadline:
                time.sleep(0.02)
            assert gate._line, "the upload never reached the decode gate"
            # Waiting in line for decode memory, with nothing borrowed from the pool.
            assert demo_db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        sender.join(timeout=60)

    assert answers == [201]
