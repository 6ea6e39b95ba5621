"""The "fixed?" page says what an answer did, in plain words."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from tests.support import (
    body_text,
    move_work_order,
    notice_rows,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    smtp_sink,
    staff_token,
    wait_until,
    work_order_of,
)


def test_fixed_after_another_residents_not_fixed_says_the_report_stays_open(
    demo_db: Database, tmp_path: Path
) -> None:
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        incident_id = open_incident_with_reporters(
            demo_db, [{"email": "ana@example.org"}, {"email": "ben@example.org"}]
        )
        move_work_order(
            demo_db, work_order_of(demo_db, incident_id), "triaged", "assigned", "completed"
        )
        with BackgroundWorker(settings, demo_db):
            assert wait_until(
                lambda: [r.status for r in notice_rows(demo_db, kind="closed")] == ["sent"] * 2
            )
        tokens = {}
        for mail in sink.messages():
            if str(mail["X-Geo311-Notice"]).startswith("closed:"):
                url = re.search(r"https?://\S+/notices/answer\?\S+", body_text(mail))
                assert url is not None
                tokens[str(mail["To"])] = parse_qs(urlsplit(url.group(0)).query)["t"][0]
    dispatcher = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher')}"}
    with TestClient(pooled_app(settings, db=demo_db)) as client:
        first = client.post(
            "/notices/answer", data={"t": tokens["ana@example.org"], "answer": "not_fixed"}
        )
        second = client.post(
            "/notices/answer", data={"t": tokens["ben@example.org"], "answer": "fixed"}
        )
        as_json = client.post(
            "/api/v1/notices/answer",
            json={"token": tokens["ben@example.org"], "answer": "fixed"},
        )
        status = client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher).json()
    assert "reopened your report" in first.text
    assert "Thank you! We are glad it is fixed." not in second.text
    assert "Your report was reopened after an earlier" in second.text
    assert "so it stays open: a crew will come back to check it." in second.text
    assert as_json.json()["outcome"] == "fixed_but_reopened"
    assert status["status"] == "reopened"
