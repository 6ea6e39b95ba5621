"""`geo311 user …` on the demo city, and the demo sign-ins `geo311 run` prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fixtures.demo_users import DEMO_SIGNINS, ensure_demo_signins
from geo311.cli import _demo_signins
from geo311.cli import app as geo311_cli
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings, SigninSettings, get_settings

FAST = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[None]:
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    monkeypatch.setenv("GEO311_SIGNIN__ARGON2_TIME_COST", "1")
    monkeypatch.setenv("GEO311_SIGNIN__ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(geo311_cli, list(args), input=stdin, env={"COLUMNS": "160"})
    return result.exit_code, result.output


def _user(db: Database, name: str) -> tuple[str, str | None, str | None, object]:
    with db.session() as s:
        row = s.execute(
            text(
                "SELECT u.role, c.code, u.password_hash, u.disabled_at FROM staff_users u "
                "LEFT JOIN crews c ON c.id = u.crew_id WHERE u.name = :n"
            ),
            {"n": name},
        ).one()
    return row[0], row[1], row[2], row[3]


def test_user_create_with_a_crew_then_passwd_disable_and_list(
    cli_env: None, demo_db: Database
) -> None:
    code, out = _run(
        "user", "create", "--name", "sam", "--role", "crew", "--crew", "streets",
        "--password-stdin", stdin="a long enough password\n",
    )  # fmt: skip
    assert code == 0, out
    role, crew, stored, disabled = _user(demo_db, "sam")
    assert (role, crew, disabled) == ("crew", "streets", None)
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert Passwords(FAST).verify(stored, "a long enough password").ok

    code, out = _run(
        "user", "passwd", "--name", "sam", "--password-stdin", stdin="another one, longer\n"
    )
    assert code == 0, out
    assert Passwords(FAST).verify(_user(demo_db, "sam")[2], "another one, longer").ok

    code, out = _run("user", "list")
    assert code == 0
    line = next(x for x in out.splitlines() if " sam " in f" {x} ")
    assert "crew" in line
    assert "streets" in line
    assert "set" in line
    assert "active" in line

    code, out = _run("user", "disable", "--name", "sam")
    assert code == 0, out
    assert _user(demo_db, "sam")[3] is not None
    assert "disabled" in next(x for x in _run("user", "list")[1].splitlines() if "sam" in x)


def test_user_create_refuses_what_it_cannot_do_and_stores_nothing(
    cli_env: None, demo_db: Database
) -> None:
    fine = "a long enough password"
    cases = [
        (["--name", "x1", "--role", "chief"], fine, "--role must be one of"),
        (["--name", "x2", "--role", "planner", "--crew", "streets"], fine, "--crew is for crew"),
        (["--name", "x3", "--role", "crew", "--crew", "nosuch"], fine, "nosuch"),
        (["--name", "x4", "--role", "admin"], "short", "at least 12 characters"),
        (["--name", "x5", "--role", "admin"], "x5", "at least 12"),
    ]
    for args, password, said in cases:
        code, out = _run("user", "create", *args, "--password-stdin", stdin=password + "\n")
        assert code != 0, args
        assert said in " ".join(out.split()), (args, out)
    with demo_db.session() as s:
        assert (
            s.execute(text("SELECT count(*) FROM staff_users WHERE name LIKE 'x_'")).scalar() == 0
        )
    # Without a terminal and without --password-stdin there is nobody to ask.
    code, out = _run("user", "create", "--name", "x6", "--role", "admin")
    assert code == 2
    assert "--password-stdin" in out
    # A second account of one name is refused.
    assert _run("user", "create", "--name", "dup", "--role", "admin", "--password-stdin",
                stdin="a long enough password\n")[0] == 0  # fmt: skip
    code, out = _run("user", "create", "--name", "dup", "--role", "planner", "--password-stdin",
                     stdin="a long enough password\n")  # fmt: skip
    assert code == 1
    assert "exists already" in out
    assert _user(demo_db, "dup")[0] == "admin"


def test_the_demo_city_gets_one_sign_in_per_role_and_run_prints_them(
    demo_db: Database, tmp_path: Path
) -> None:
    usable = ensure_demo_signins(demo_db, slug="demo", passwords=Passwords(FAST))
    assert sorted(d.role for d in usable) == ["admin", "crew", "dispatcher", "planner"]
    assert _user(demo_db, "demo-crew")[1] == "streets"
    for demo in DEMO_SIGNINS:
        assert Passwords(FAST).verify(_user(demo_db, demo.name)[2], demo.password).ok
    # A demo password someone changed is neither reset nor printed.
    with demo_db.session() as s:
        s.execute(
            text("UPDATE staff_users SET password_hash = :h WHERE name = 'demo-admin'"),
            {"h": Passwords(FAST).hash("changed by the admin")},
        )
    again = ensure_demo_signins(demo_db, slug="demo", passwords=Passwords(FAST))
    assert "demo-admin" not in {d.name for d in again}
    assert len(again) == 3
    # The banner lists them with the embedded database only.
    embedded = Settings(data_dir=tmp_path, jurisdiction="demo", signin=FAST)
    banner = _demo_signins(demo_db, embedded)
    assert "name demo-dispatcher" in banner
    assert "password demo-dispatcher-311" in banner
    external = embedded.model_copy(
        update={"db": embedded.db.model_copy(update={"url": demo_db.engine.url.render_as_string()})}
    )
    assert _demo_signins(demo_db, external) == ""


def test_a_city_that_is_not_the_demo_gets_no_demo_sign_ins(db: Database) -> None:
    from layers import service as layers_service

    with db.session() as s:
        layers_service.create_jurisdiction(s, slug="realcity", name="Real City", timezone="UTC")
    assert ensure_demo_signins(db, slug="realcity", passwords=Passwords(FAST)) == []
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM staff_users")).scalar() == 0
