"""Open311's pure parts, without a database: attribute answers, query parameters, dates,
statuses and the two renderings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from fixtures.demo_attributes import ATTRIBUTES
from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.resident.open311.attributes import AttributeDefinition, Choice, check_attributes
from geo311.resident.open311.formats import render_list, render_object, w3c
from geo311.resident.open311.query import parse_requests_query, parse_updates_query, parse_w3c
from geo311.resident.open311.schemas import ErrorOut, ServiceDefinitionOut, ServiceOut
from geo311.resident.open311.status import KNOWN_STATUSES, open311_status, update_description
from tests.geo311.open311_shapes import check_json, check_xml, parse_xml, text_of
from work_orders.models import INCIDENT_STATUSES

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LIMITS = {"max_span_days": 90, "page_size_default": 1000, "page_size_max": 1000}

POTHOLE = ATTRIBUTES["pothole"]
DUMPING = ATTRIBUTES["illegal_dumping"]
COLLECTION = ATTRIBUTES["missed_collection"]
STREETLIGHT = ATTRIBUTES["streetlight_out"]
TREE = ATTRIBUTES["tree_down"]


def _fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e.field for e in exc.value.errors]


# --- attributes -----------------------------------------------------------------------------


def test_answers_are_checked_and_typed() -> None:
    assert check_attributes(POTHOLE, {"position": ["lane"], "depth_cm": ["8"]}) == {
        "position": "lane",
        "depth_cm": 8,
    }
    assert check_attributes(POTHOLE, {"position": ["curb"], "depth_cm": ["7.5"]})["depth_cm"] == 7.5
    assert check_attributes(DUMPING, {"items": ["tyres", "bags", "tyres"]}) == {
        "items": ["tyres", "bags"]
    }
    answers = check_attributes(COLLECTION, {"carts": ["trash"], "collection_day": ["2026-06-01"]})
    assert answers["collection_day"] == "2026-06-01T00:00:00"


def test_every_bad_answer_is_named_at_once() -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(POTHOLE, {"depth_cm": ["deep"]})
    assert _fields(exc) == ["attribute[position]", "attribute[depth_cm]"]
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(POTHOLE, {"position": ["moon"]})
    assert "lane, bike_lane, crosswalk, curb" in exc.value.errors[0].message
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(POTHOLE, {"position": ["lane", "curb"]})
    assert "one value" in exc.value.errors[0].message
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(DUMPING, {"items": ["bags", "piano"]})
    assert "'piano'" in exc.value.errors[0].message
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(STREETLIGHT, {"problem": ["dark"], "pole_number": ["12\n34"]})
    assert _fields(exc) == ["attribute[pole_number]"]
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(COLLECTION, {"carts": ["trash"], "collection_day": ["last tuesday"]})
    assert _fields(exc) == ["attribute[collection_day]"]


def test_empty_answers_are_missing_and_unasked_codes_are_dropped() -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_attributes(POTHOLE, {"position": ["  "]})
    assert _fields(exc) == ["attribute[position]"]
    # FixMyStreet sends attributes of its own; they must not cost the resident the report.
    assert check_attributes(
        POTHOLE, {"position": ["lane"], "fixmystreet_id": ["123"], "title": ["Hole"]}
    ) == {"position": "lane"}
    # A question that only informs (variable false) takes no answer.
    assert check_attributes(TREE, {"safety": ["ok"]}) == {}


def test_a_definition_must_make_sense() -> None:
    with pytest.raises(ValueError, match="datatype"):
        AttributeDefinition(code="x", datatype="colour", description="", order=1)
    with pytest.raises(ValueError, match="choices"):
        AttributeDefinition(code="x", datatype="singlevaluelist", description="", order=1)
    with pytest.raises(ValueError, match="choices"):
        AttributeDefinition(
            code="x", datatype="string", description="", order=1, choices=(Choice("a", "A"),)
        )
    with pytest.raises(ValueError, match="order"):
        AttributeDefinition(code="x", datatype="string", description="", order=0)


def test_the_demo_definitions_use_every_datatype() -> None:
    used = {d.datatype for definitions in ATTRIBUTES.values() for d in definitions}
    assert used == {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}


# --- dates and query parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2010-01-01T00:00:00Z", datetime(2010, 1, 1, tzinfo=UTC)),
        ("2010-01-01T00:00:00z", datetime(2010, 1, 1, tzinfo=UTC)),
        (
            "2010-04-14T06:37:38-08:00",
            datetime(2010, 4, 14, 6, 37, 38, tzinfo=timezone(timedelta(hours=-8))),
        ),
        ("2010-01-01T00:00:00.123456Z", datetime(2010, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2010-01-01T00:00Z", datetime(2010, 1, 1, tzinfo=UTC)),
        # A '+' the client forgot to encode arrives as a space.
        (
            "2010-01-01T02:00:00 02:00",
            datetime(2010, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        ),
        # RFC 3339's space between date and time (chicagorequests sends it).
        (
            "2026-12-03 00:00:00-06:00",
            datetime(2026, 12, 3, tzinfo=timezone(timedelta(hours=-6))),
        ),
        # ... and with an unencoded '+' in its offset as well.
        (
            "2026-12-03 00:00:00.25 01:00",
            datetime(2026, 12, 3, 0, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1))),
        ),
    ],
)
def test_w3c_dates_are_read_with_their_offset(raw: str, expected: datetime) -> None:
    errors: list[FieldError] = []
    parsed = parse_w3c(raw, "start_date", errors)
    assert errors == []
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "raw",
    [
        "2010-01-01",
        "2010-01-01T00:00:00",
        "2010-01-01 00:00:00",
        "yesterday",
        "2010-13-01T00:00:00Z",
        "1262304000",
    ],
)
def test_dates_without_an_offset_or_not_w3c_are_refused(raw: str) -> None:
    errors: list[FieldError] = []
    assert parse_w3c(raw, "end_date", errors) is None
    assert [e.field for e in errors] == ["end_date"]
    assert "W3C" in errors[0].message


def test_the_default_window_is_the_last_90_days() -> None:
    query = parse_requests_query({}, now=NOW, **LIMITS)
    assert query.requested is not None
    assert (query.requested.start, query.requested.end) == (NOW - timedelta(days=90), NOW)
    assert query.updated is None
    assert (query.paging.page, query.paging.page_size) == (1, 1000)
    one_end = parse_requests_query({"start_date": "2026-01-01T00:00:00Z"}, now=NOW, **LIMITS)
    assert one_end.requested is not None
    assert one_end.requested.end == datetime(2026, 4, 1, tzinfo=UTC)


def test_empty_parameters_behave_like_missing_ones() -> None:
    empty = {"service_code": "", "status": "", "start_date": " ", "page": "", "extensions": ""}
    assert parse_requests_query(empty, now=NOW, **LIMITS) == parse_requests_query(
        {}, now=NOW, **LIMITS
    )


def test_a_span_over_90_days_and_other_mistakes_are_all_reported() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_requests_query(
            {
                "start_date": "2026-01-01T00:00:00Z",
                "end_date": "2026-04-02T00:00:00Z",
                "status": "open,pending",
                "page": "0",
                "page_size": "5000",
            },
            now=NOW,
            **LIMITS,
        )
    assert sorted(_fields(exc)) == ["end_date", "page", "page_size", "status"]
    assert "91.0 days" in exc.value.errors[1].message
    with pytest.raises(ValidationFailed) as exc:
        parse_requests_query(
            {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            now=NOW,
            **LIMITS,
        )
    assert _fields(exc) == ["end_date"]


def test_service_request_ids_override_every_other_filter() -> None:
    query = parse_requests_query(
        {"service_request_id": "r-1, R-2,R-1", "status": "closed", "start_date": "junk"},
        now=NOW,
        **LIMITS,
    )
    assert query.service_request_ids == ("R-1", "R-2")
    assert query.requested is None
    assert query.statuses == frozenset()


def test_updated_after_alone_lifts_the_requested_window() -> None:
    query = parse_requests_query({"updated_after": "2026-11-01T00:00:00Z"}, now=NOW, **LIMITS)
    assert query.requested is None
    assert query.updated is not None
    assert query.updated.start == datetime(2026, 11, 1, tzinfo=UTC)
    both = parse_requests_query(
        {"updated_after": "2026-11-01T00:00:00Z", "start_date": "2026-10-01T00:00:00Z"},
        now=NOW,
        **LIMITS,
    )
    assert both.requested is not None
    assert both.updated is not None
    assert parse_requests_query({}, now=NOW, **LIMITS).updated is None
    with pytest.raises(ValidationFailed):
        parse_requests_query(
            {"updated_after": "2026-01-01T00:00:00Z", "updated_before": "2026-06-01T00:00:00Z"},
            now=NOW,
            **LIMITS,
        )


def test_updates_query_has_the_same_window_rules() -> None:
    query = parse_updates_query({}, now=NOW, **LIMITS)
    assert query.window.end == NOW
    assert query.window.start == NOW - timedelta(days=90)
    with pytest.raises(ValidationFailed):
        parse_updates_query(
            {"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            now=NOW,
            **LIMITS,
        )


# --- statuses -------------------------------------------------------------------------------


def test_every_incident_status_has_an_open311_status() -> None:
    assert set(INCIDENT_STATUSES) == KNOWN_STATUSES
    assert {open311_status(s) for s in INCIDENT_STATUSES} == {"open", "closed"}
    assert open311_status("closed") == "closed"
    assert open311_status("reopened") == "open"
    assert open311_status("something_new") == "open"


def test_an_update_says_its_public_note_else_words_for_the_status() -> None:
    # The third argument is the event's public note (chosen wording), never a staff reason.
    assert update_description("status_changed", "closed", "Resolved: repaired.") == (
        "Resolved: repaired."
    )
    assert update_description("status_changed", "closed", None) == "Closed"
    assert update_description("opened", "new", None) == "Opened"
    assert update_description("merged", None, "") == "Merged"


# --- renderings -----------------------------------------------------------------------------


def test_xml_and_json_have_the_spec_shapes() -> None:
    services = [
        ServiceOut(
            service_code="001",
            service_name="Cans & <bins>",
            description="",
            metadata=True,
            keywords="a, b",
            group="sanitation",
        )
    ]
    xml = render_list("services", services, "xml", UTC)
    root = check_xml("services", xml)
    assert text_of(root, "service/service_name") == "Cans & <bins>"
    assert text_of(root, "service/metadata") == "true"
    # An empty value is an empty element, not a self-closed one.
    assert b"<description></description>" in xml
    body = check_json("services", render_list("services", services, "json", UTC))
    assert body[0]["service_code"] == "001"
    assert body[0]["metadata"] is True


def test_an_empty_list_is_an_empty_root() -> None:
    root = parse_xml(render_list("service_requests", [], "xml", UTC))
    assert root.tag == "service_requests"
    assert len(root) == 0
    assert json.loads(render_list("service_requests", [], "json", UTC)) == []


def test_characters_xml_cannot_carry_are_dropped() -> None:
    errors = [ErrorOut(code=400, description="bad\x00 byte\x1b and \U0001f573 hole")]
    root = check_xml("errors", render_list("errors", errors, "xml", UTC))
    assert text_of(root, "error/description") == "bad byte and \U0001f573 hole"
    assert json.loads(render_list("errors", errors, "json", UTC))[0]["description"].startswith(
        "bad\x00"
    )


def test_an_object_document_keeps_its_lists_wrapped() -> None:
    definition = ServiceDefinitionOut(service_code="POT", attributes=[])
    root = check_xml(
        "service_definition", render_object("service_definition", definition, "xml", UTC)
    )
    assert [c.tag for c in root] == ["service_code", "attributes"]
    assert json.loads(render_object("service_definition", definition, "json", UTC)) == {
        "service_code": "POT",
        "attributes": [],
    }


def test_datetimes_carry_the_local_offset_to_the_second() -> None:
    at = datetime(2026, 6, 1, 12, 0, 0, 987654, tzinfo=UTC)
    assert w3c(at, ZoneInfo("America/Chicago")) == "2026-06-01T07:00:00-05:00"
    assert w3c(at, UTC) == "2026-06-01T12:00:00+00:00"


def test_an_open311_client_told_to_wait_gets_503_with_retry_after_in_its_own_shape() -> None:
    from geo311.api.open311_refusal import refusal
    from geo311.kernel.media.uploads import DecodeBusy

    busy = DecodeBusy("Photos are being processed; try again.", headers={"Retry-After": "5"})
    answer = refusal("/open311/v2/requests.json", busy)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert json.loads(bytes(answer.body)) == [
        {"code": 503, "description": "Photos are being processed; try again."}
    ]
    # A bad request stays a 400, whatever status the core error carries.
    assert refusal("/open311/v2/requests.xml", ValidationFailed("no")).status_code == 400
