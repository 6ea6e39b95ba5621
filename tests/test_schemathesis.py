"""The app's own OpenAPI document, fuzzed: no input makes a 5xx, and every answer matches the
document (status, content type aside, body schema).

Schemathesis generates requests from /openapi.json for every operation, valid and invalid,
and sends them in-process (ASGI) to an app on the demo city, once without credentials (most
requests stop at 401/403, as they should) and once with an admin token (they reach the
handlers). Bounded and seeded so CI repeats the same cases: a few examples per operation,
no per-example deadline.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from schemathesis import APIOperation
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from geo311.app import create_app
from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings

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


@dataclass
class Outcome:
    """What a fuzzing run saw: failures, and the status of every answer by operation."""

    failures: list[str] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)

    def answered_2xx(self) -> set[str]:
        return {op for op, codes in self.statuses.items() if any(c < 300 for c in codes)}


def _fuzz_operation(
    operation: APIOperation,  # type: ignore[type-arg]
    mode: schemathesis.GenerationMode,
    headers: dict[str, str],
    outcome: Outcome,
) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        try:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:
            outcome.failures.append(_summary(operation.label, mode, exc))
        else:
            outcome.statuses.setdefault(operation.label, []).append(response.status_code)

    # Unsatisfiable: nothing in this operation can be made invalid (e.g. no parameters).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


def _is_stream(operation: APIOperation) -> bool:  # type: ignore[type-arg]
    content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
    return "text/event-stream" in content


def _fuzz(app: FastAPI, headers: dict[str, str], *, streams: bool = True) -> Outcome:
    """Return what fuzzing every operation of the app's OpenAPI document saw. ``streams``
    False: leave out event streams, whose accepted requests never end (the in-process client
    waits for the whole body); tests/geo311/test_live.py checks their answers."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    outcome = Outcome()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            outcome.failures.append(f"invalid operation in the document: {result.err()}")
            continue
        if not streams and _is_stream(result.ok()):
            continue
        for mode in MODES:
            _fuzz_operation(result.ok(), mode, headers, outcome)
    return outcome


def test_no_request_without_credentials_makes_a_server_error_or_breaks_the_document(
    app: FastAPI,
) -> None:
    outcome = _fuzz(app, {})
    assert not outcome.failures, "\n\n".join(outcome.failures)
    # The public routes (reports, categories, Open311) answered; the rest said 401.
    assert len(outcome.answered_2xx()) >= 5, outcome.statuses


def test_no_request_as_admin_makes_a_server_error_or_breaks_the_document(
    app: FastAPI, demo_db: Database
) -> None:
    outcome = _fuzz(app, {"Authorization": f"Bearer {_admin_token(demo_db)}"}, streams=False)
    assert not outcome.failures, "\n\n".join(outcome.failures)
    # The cases went past the sign-in and into the handlers, not all stopped at 401/422.
    assert len(outcome.answered_2xx()) >= 25, outcome.statuses
