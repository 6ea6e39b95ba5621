"""The app's own OpenAPI document, fuzzed: no input makes a 5xx, and every answer matches the
document (status, content type aside, body schema).

Schemathesis generates requests from /openapi.json for every operation, valid and invalid,
and sends them in-process (ASGI) to an app on the demo city, once without credentials (most
requests stop at 401/403, as they should) and once with an admin token (they reach the
handlers). Bounded and seeded so CI repeats the same cases: a few examples per operation,
no per-example deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from geo311.app import create_app
from geo311.auth import service as auth_service
from geo311.database import Database
from geo311.settings import RoutingSettings, Settings

# Examples per operation and generation mode; GEO311_FUZZ_EXAMPLES raises it for a longer run.
EXAMPLES = int(os.environ.get("GEO311_FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, response_schema_conformance]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@pytest.fixture
def app(demo_db: Database, tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path,
        jurisdiction="demo",
        public_base_url="http://geo311.test",
        # Plans run the solver: keep each search short, the fuzzer only cares about answers.
        routing=RoutingSettings(time_limit_s=0.05, replan_time_limit_s=0.05),
    )
    application = create_app(settings, db=demo_db)
    with TestClient(application):  # runs the lifespan
        yield application


def _admin_token(db: Database) -> str:
    with db.session() as s:
        return auth_service.create_token(s, name="fuzzer", role="admin")


def _summary(label: str, mode: schemathesis.GenerationMode, exc: BaseException) -> str:
    # The first lines say what failed and how to reproduce it; the rest repeats them.
    lines = str(exc).strip().splitlines()
    return f"{label} [{mode.value}]: " + "\n".join(lines[:30])


def _fuzz(app: FastAPI, headers: dict[str, str]) -> list[str]:
    """Return one line per failing case: operation, check and the failure's message."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                calls.append(operation.label)
                try:
                    case.call_and_validate(headers=headers, checks=CHECKS)
                except (AssertionError, BaseExceptionGroup) as exc:
                    failures.append(_summary(operation.label, mode, exc))

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing in this operation can be made invalid (e.g. no parameters)
    print(f"{len(calls)} cases over {len(set(calls))} operations")
    return failures


def test_no_request_without_credentials_makes_a_server_error_or_breaks_the_document(
    app: FastAPI,
) -> None:
    failures = _fuzz(app, {})
    assert not failures, "\n\n".join(failures)


def test_no_request_as_admin_makes_a_server_error_or_breaks_the_document(
    app: FastAPI, demo_db: Database
) -> None:
    failures = _fuzz(app, {"Authorization": f"Bearer {_admin_token(demo_db)}"})
    assert not failures, "\n\n".join(failures)
