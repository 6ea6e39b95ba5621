"""``geo311 apikey create|list|revoke`` run as an admin runs them; the keys then open (and
close) the door to POST requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from geo311.cli import app as cli
from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from tests.geo311.open311_helpers import BASE, client, settings, ward_points
from tests.geo311.open311_shapes import check_xml, text_of

__all__ = ["client", "settings"]  # fixtures used by name below


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[None]:
    """The CLI pointed at the demo database."""
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _post(client: TestClient, key: str, lat: float, lon: float) -> int:
    resp = client.post(
        f"{BASE}/requests.xml",
        data={"api_key": key, "service_code": "graffiti", "lat": str(lat), "long": str(lon)},
    )
    return int(resp.status_code)


@pytest.mark.usefixtures("admin")
def test_keys_are_issued_listed_and_revoked(client: TestClient, demo_db: Database) -> None:
    lat, lon = ward_points(demo_db)["3"]
    code, out = run("apikey", "create", "--app", "FixMyStreet")
    assert code == 0, out
    key = out.strip()
    assert key.startswith("o311_")
    with demo_db.session() as s:
        stored = s.execute(text("SELECT key_sha256, application FROM open311_api_keys")).all()
    # Only a hash is kept.
    assert [app for _, app in stored] == ["FixMyStreet"]
    assert key not in {digest for digest, _ in stored}

    with demo_db.session() as s:
        assert s.execute(text("SELECT last_used_at FROM open311_api_keys")).scalar() is None
    assert _post(client, key, lat, lon) == 200
    with demo_db.session() as s:
        assert s.execute(text("SELECT last_used_at FROM open311_api_keys")).scalar() is not None

    code, out = run("apikey", "list")
    assert code == 0, out
    assert "FixMyStreet" in out
    assert key[:12] in out
    assert key not in out

    code, out = run("apikey", "revoke", key)
    assert code == 0, out
    resp = client.post(
        f"{BASE}/requests.xml",
        data={"api_key": key, "service_code": "graffiti", "lat": str(lat), "long": str(lon)},
    )
    assert resp.status_code == 403
    assert "revoked" in text_of(check_xml("errors", resp.content)[0], "description")
    code, out = run("apikey", "revoke", key)
    assert code == 1
    assert "No live key" in out


@pytest.mark.usefixtures("admin")
def test_revoking_an_application_revokes_all_its_keys(
    client: TestClient, demo_db: Database
) -> None:
    lat, lon = ward_points(demo_db)["1"]
    keys = [run("apikey", "create", "--app", "Civic app")[1].strip() for _ in range(2)]
    other = run("apikey", "create", "--app", "Another app")[1].strip()
    assert [_post(client, k, lat, lon) for k in [*keys, other]] == [200, 200, 200]
    code, out = run("apikey", "revoke", "--app", "Civic app")
    assert code == 0, out
    assert "Revoked 2 keys" in out
    assert [_post(client, k, lat, lon) for k in [*keys, other]] == [403, 403, 200]


@pytest.mark.usefixtures("admin")
def test_the_cli_refuses_unclear_requests() -> None:
    assert run("apikey", "revoke")[0] == 2
    assert run("apikey", "revoke", "o311_x", "--app", "A")[0] == 2
    assert run("apikey", "create", "--app", "  ")[0] == 2
