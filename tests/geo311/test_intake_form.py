"""The report form's checks, without a database."""

from __future__ import annotations

import pytest

from geo311.kernel.errors import ValidationFailed
from geo311.kernel.settings import IntakeSettings
from geo311.resident.intake.service import parse_report_form

SETTINGS = IntakeSettings()


def _fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e.field for e in exc.value.errors}


def test_a_complete_form_is_parsed() -> None:
    draft = parse_report_form(
        {
            "category": " pothole ",
            "lat": "44.95",
            "lon": "-93.2",
            "description": "Deep one",
            "email": "a@example.org",
            "language": "es",
        },
        channel="api",
        settings=SETTINGS,
    )
    assert (draft.category, draft.lat, draft.lon, draft.language) == ("pothole", 44.95, -93.2, "es")
    assert draft.email == "a@example.org"


def test_every_bad_field_is_listed_at_once() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_report_form(
            {
                "lat": "91",
                "lon": "east",
                "description": "x" * 4001,
                "email": "not-an-address",
                "phone": "12",
                "language": "English please",
            },
            channel="api",
            settings=SETTINGS,
        )
    assert _fields_of(exc) == {
        "category",
        "lat",
        "lon",
        "description",
        "email",
        "phone",
        "language",
    }


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [("-90.0001", "0", "lat"), ("0", "180.5", "lon"), ("nan", "0", "lat"), ("inf", "0", "lat")],
)
def test_coordinates_out_of_range_are_refused(lat: str, lon: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_report_form(
            {"category": "pothole", "lat": lat, "lon": lon}, channel="api", settings=SETTINGS
        )
    assert _fields_of(exc) == {field}


def test_half_a_pin_is_refused() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_report_form({"category": "pothole", "lat": "44.9"}, channel="api", settings=SETTINGS)
    assert _fields_of(exc) == {"lon"}


def test_description_at_the_limit_is_accepted() -> None:
    draft = parse_report_form(
        {"category": "pothole", "description": "é" * 4000}, channel="api", settings=SETTINGS
    )
    assert len(draft.description) == 4000
