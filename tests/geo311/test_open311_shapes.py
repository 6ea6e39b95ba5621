"""The shapes the Open311 tests check against are the spec's: real example responses (the
spec's own, Boston, DC, San Francisco, mySociety) pass them, and known-bad documents fail."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import SHARED_DATA
from tests.geo311.open311_shapes import check_json, check_xml, json_schemas

EXAMPLES = SHARED_DATA.parent / "open311" / "examples"
LENIENT_JSON = json_schemas(strict=False)

GOOD_XML = [
    ("discovery", "open311-wiki-spec/discovery.xml"),
    ("discovery", "codeforamerica-node-open311-npm/discovery-dc.xml"),
    ("services", "open311-wiki-spec/service-list.xml"),
    ("services", "mysociety-open311-adapter/services.xml"),
    ("services", "codeforamerica-node-open311-npm/dc-services.xml"),
    ("service_definition", "open311-wiki-spec/service-definition.xml"),
    ("service_definition", "mysociety-open311-adapter/service_definition_POT.xml"),
    ("service_definition", "codeforamerica-node-open311-npm/dc-services-S0301.xml"),
    ("posted", "open311-wiki-spec/service-request-post.xml"),
    ("posted", "mysociety-open311-adapter/post_requests_response.xml"),
    ("posted", "codeforamerica-open311-ruby/post_service_request.xml"),
    ("token", "open311-wiki-spec/request-from-token.xml"),
    ("token", "codeforamerica-node-open311-npm/token.xml"),
    ("requests", "open311-wiki-spec/service-requests.xml"),
    ("requests", "open311-wiki-spec/service-request.xml"),
    ("requests", "codeforamerica-node-open311-npm/service-request.xml"),
    ("errors", "open311-wiki-spec/errors.xml"),
    ("errors", "codeforamerica-open311-ruby/get_service_request_not_found.xml"),
    ("errors", "codeforamerica-node-open311-npm/boston-err-submitrequest-base_is_duplicate.xml"),
    ("updates", "mysociety-fixmystreet/servicerequestupdates.xml"),
]
# The spec's JSON examples that are valid JSON (some carry numbers like 001).
GOOD_JSON = [
    ("discovery", "open311-wiki-spec/discovery.json"),
    ("discovery", "codeforamerica-node-open311-npm/discovery-boston.json"),
    ("service_definition", "open311-wiki-spec/service-definition.json"),
    ("posted", "open311-wiki-spec/service-request-post.json"),
    ("token", "open311-wiki-spec/request-from-token.json"),
    ("errors", "open311-wiki-spec/errors.json"),
]
BAD_XML = [
    # A bare <error> root with an HTTP status line: the README's "bad server" example.
    ("errors", "codeforamerica-open311-ruby/403.xml"),
    # <attribute> straight under <service_definition>, without the <attributes> list.
    ("service_definition", "codeforamerica-open311-ruby/service_definition.xml"),
    # A status outside open/closed.
    ("requests", "mysociety-fixmystreet/getservicerequests_requests.xml"),
]


@pytest.fixture(scope="module")
def examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip(f"Open311 example responses not found at {EXAMPLES}")
    return EXAMPLES


@pytest.mark.parametrize(("kind", "name"), GOOD_XML)
def test_the_spec_examples_have_the_xml_shapes(examples: Path, kind: str, name: str) -> None:
    check_xml(kind, (examples / name).read_bytes(), ours=False)


@pytest.mark.parametrize(("kind", "name"), GOOD_JSON)
def test_the_spec_examples_have_the_json_shapes(examples: Path, kind: str, name: str) -> None:
    check_json(kind, (examples / name).read_bytes(), schemas=LENIENT_JSON)


@pytest.mark.parametrize(("kind", "name"), BAD_XML)
def test_bad_documents_fail_the_shapes(examples: Path, kind: str, name: str) -> None:
    body = (examples / name).read_bytes()
    # Drop an HTTP status line captured in front of the document.
    body = body[body.index(b"<") :]
    with pytest.raises(AssertionError, match="shape"):
        check_xml(kind, body, ours=False)


def test_a_json_root_wrapped_in_an_object_is_not_the_spec() -> None:
    wrapped = {"services": [{"service_code": "POT", "service_name": "Potholes"}]}
    with pytest.raises(jsonschema.ValidationError):
        check_json("services", json.dumps(wrapped).encode())
