"""The page shell, through the app: a fresh script nonce per response in the policy and on
every inline script, never 'unsafe-inline'; the language switch; escaped text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import MapsSettings, Settings
from tests.support import pooled_app


def _client(db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(pooled_app(settings, db=db)) as c:
        yield c


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(demo_db, Settings(data_dir=tmp_path))


def script_src(policy: str) -> str:
    return next(p for p in policy.split(";") if p.strip().startswith("script-src")).strip()


def test_each_page_response_has_its_own_nonce_on_every_inline_script(client: TestClient) -> None:
    nonces = []
    for _ in range(2):
        response = client.get("/map")
        assert response.status_code == 200
        scripts = script_src(response.headers["content-security-policy"])
        assert "'unsafe-inline'" not in scripts
        nonce = re.fullmatch(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{20,})'", scripts)
        assert nonce is not None, scripts
        nonces.append(nonce.group(1))
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
        assert inline
        assert all(f'nonce="{nonce.group(1)}"' in tag for tag in inline)
    assert nonces[0] != nonces[1]
    # a page with no inline script (the API docs) keeps the plain policy
    assert script_src(client.get("/docs").headers["content-security-policy"]) == (
        "script-src 'self'"
    )


def test_tile_images_are_allowed_only_from_the_configured_tile_host(
    demo_db: Database, tmp_path: Path
) -> None:
    maps = MapsSettings(tile_url="https://tiles.example.test/{z}/{x}/{y}.png")
    for c in _client(demo_db, Settings(data_dir=tmp_path, maps=maps)):
        policy = c.get("/map").headers["content-security-policy"]
        assert "img-src 'self' data: blob: https://tiles.example.test;" in policy
        assert (
            "img-src 'self' data: blob: https://tiles.example.test;"
            in (c.get("/report").headers["content-security-policy"])
        )
        assert "tiles.example.test" not in c.get("/docs").headers["content-security-policy"]


def test_the_language_switch_picks_spanish_and_remembers_it(client: TestClient) -> None:
    english = client.get("/map")
    assert '<html lang="en">' in english.text
    assert "Reports on the map" in english.text
    spanish = client.get("/map", params={"lang": "es"})
    assert '<html lang="es">' in spanish.text
    assert "Avisos en el mapa" in spanish.text
    assert 'aria-current="true">español</a>' in spanish.text
    assert "geo311_lang=es" in spanish.headers["set-cookie"]
    assert "Avisos en el mapa" in client.get("/map").text  # the cookie remembers it
    client.cookies.clear()
    asked = client.get("/map", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in asked.text
    assert '<html lang="en">' in client.get("/map", params={"lang": "xx"}).text


def test_names_from_the_database_are_escaped_in_the_shell(
    client: TestClient, demo_db: Database
) -> None:
    evil = "<script>alert(1)</script>Bench"
    with demo_db.session() as s:
        s.execute(
            text(
                "INSERT INTO service_categories (jurisdiction_id, code, name, group_code, "
                "sla_hours) SELECT id, 'bench', :name, 'parks', 48 FROM jurisdictions"
            ),
            {"name": evil},
        )
        s.execute(text("UPDATE jurisdictions SET name = :name"), {"name": "<b>Demo</b> City"})
    page = client.get("/map").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Bench" in page
    assert "<script>alert(1)" not in page
    assert "&lt;b&gt;Demo&lt;/b&gt; City" in page
    assert "<b>Demo</b>" not in page


def test_the_shell_has_landmarks_a_skip_link_and_the_user(client: TestClient) -> None:
    page = client.get("/map").text
    assert '<a class="skip-link" href="#main">' in page
    assert '<main id="main"' in page
    assert "<header" in page
    assert 'aria-label="Pages"' in page
    assert 'aria-current="page">Map of reports</a>' in page
