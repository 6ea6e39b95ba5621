"""One built app bound again (geo311.app.bind_app, what the tests' app pool does between
tests) answers from its new database and settings only, and the pool lends each test its own."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from geo311.app import bind_app, create_app
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.support import pooled_app


def _categories(client: TestClient) -> list[str] | None:
    """The categories' codes; None when the database has no jurisdiction (a 404)."""
    response = client.get("/api/v1/categories")
    if response.status_code == 404:
        return None
    assert response.status_code == 200
    return sorted(c["code"] for c in response.json())


def _endpoint(client: TestClient) -> str:
    response = client.get("/open311/v2/discovery.json")
    assert response.status_code == 200
    return str(response.json()["endpoints"][0]["url"])


def test_an_app_bound_again_answers_from_the_new_database_and_settings(
    demo_db: Database, db: Database, tmp_path: Path
) -> None:
    app = create_app(
        Settings(data_dir=tmp_path / "a", public_base_url="https://a.example"), db=demo_db
    )
    with TestClient(app) as client:
        demo_categories = _categories(client)
        assert _endpoint(client).startswith("https://a.example/")
    assert demo_categories  # the demo city's; the empty database has no jurisdiction at all

    bind_app(app, Settings(data_dir=tmp_path / "b", public_base_url="https://b.example"), db=db)
    with TestClient(app) as client:
        assert _categories(client) is None
        assert _endpoint(client).startswith("https://b.example/")

    bind_app(
        app, Settings(data_dir=tmp_path / "a", public_base_url="https://a.example"), db=demo_db
    )
    with TestClient(app) as client:
        assert _categories(client) == demo_categories


def test_two_apps_taken_in_one_test_are_two_apps_each_with_its_own_database(
    demo_db: Database, db: Database, tmp_path: Path
) -> None:
    first = pooled_app(Settings(data_dir=tmp_path / "a"), db=demo_db)
    second = pooled_app(Settings(data_dir=tmp_path / "b"), db=db)
    assert first is not second
    with TestClient(first) as a, TestClient(second) as b:
        assert _categories(a)
        assert _categories(b) is None
