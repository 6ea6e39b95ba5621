"""The shapes of GeoReport v2 documents, written down from the spec as XML Schemas and JSON
Schemas, and checks that parse a response with a real XML parser (lxml) and validate it.

``test_open311_shapes`` validates the spec's own example responses against these shapes (and
shows that known-bad documents fail), so a response that passes has the spec's shape.
``strict`` shapes are what geo311 promises beyond the spec: ids as JSON strings, and every
field present (null or an empty element when there is no value).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from lxml import etree

XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
W3C = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+\-]\d\d:\d\d)"

_TYPES = f"""
  <xs:simpleType name="w3c"><xs:restriction base="xs:string">
    <xs:pattern value="{W3C}"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="w3cOrEmpty"><xs:restriction base="xs:string">
    <xs:pattern value="({W3C})?"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="nonEmpty"><xs:restriction base="xs:string">
    <xs:minLength value="1"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="status"><xs:restriction base="xs:string">
    <xs:enumeration value="open"/><xs:enumeration value="closed"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="datatype"><xs:restriction base="xs:string">
    <xs:enumeration value="string"/><xs:enumeration value="number"/>
    <xs:enumeration value="datetime"/><xs:enumeration value="text"/>
    <xs:enumeration value="singlevaluelist"/><xs:enumeration value="multivaluelist"/>
  </xs:restriction></xs:simpleType>
  <xs:simpleType name="serviceType"><xs:restriction base="xs:string">
    <xs:enumeration value="realtime"/><xs:enumeration value="batch"/>
    <xs:enumeration value="blackbox"/></xs:restriction></xs:simpleType>
"""


def _schema(body: str) -> etree.XMLSchema:
    text = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{_TYPES}{body}</xs:schema>'
    return etree.XMLSchema(etree.fromstring(text.encode()))


def _all(*elements: str) -> str:
    return "<xs:complexType><xs:all>" + "".join(elements) + "</xs:all></xs:complexType>"


def _el(name: str, type_: str = "xs:string", *, optional: bool = False) -> str:
    occurs = ' minOccurs="0"' if optional else ""
    return f'<xs:element name="{name}" type="{type_}"{occurs}/>'


def _list(
    name: str, item: str, item_type: str, *, optional: bool = False, min_items: int = 0
) -> str:
    occurs = ' minOccurs="0"' if optional else ""
    return (
        f'<xs:element name="{name}"{occurs}><xs:complexType><xs:sequence>'
        f'<xs:element name="{item}" minOccurs="{min_items}" maxOccurs="unbounded">{item_type}'
        "</xs:element></xs:sequence></xs:complexType></xs:element>"
    )


_REQUEST_FIELDS = (
    _el("service_request_id", "nonEmpty"),
    _el("status", "status"),
    _el("status_notes"),
    _el("service_name"),
    _el("service_code", "nonEmpty"),
    _el("description"),
    _el("agency_responsible"),
    _el("service_notice"),
    _el("requested_datetime", "w3c"),
    _el("updated_datetime", "w3c"),
    _el("expected_datetime", "w3cOrEmpty"),
    _el("address"),
    _el("address_id"),
    _el("zipcode"),
    _el("lat", "xs:double"),
    _el("long", "xs:double"),
    _el("media_url"),
)
_EXTENSIONS = (
    _list(
        "attributes",
        "attribute",
        _all(_el("code", "nonEmpty"), _el("label"), _el("value"), _el("name")),
        optional=True,
    ),
    '<xs:element name="extended_attributes" minOccurs="0">'
    + _all(
        _el("channel", "nonEmpty"),
        _el("ward"),
        _el("ward_name"),
        _el("duplicate", "xs:boolean"),
        _el("parent_service_request_id"),
        _el("status_detail", "nonEmpty"),
        _list(
            "photos",
            "photo",
            _all(
                _el("media_url", "nonEmpty"),
                _el("thumbnail_url", "nonEmpty"),
                _el("title"),
                _el("width", "xs:positiveInteger"),
                _el("height", "xs:positiveInteger"),
                _el("created_at", "w3c"),
            ),
        ),
    )
    + "</xs:element>",
    _list(
        "notes",
        "note",
        _all(_el("datetime", "w3c"), _el("description"), _el("type", "nonEmpty")),
        optional=True,
    ),
)
_ATTRIBUTE = _all(
    _el("variable", "xs:boolean"),
    _el("code", "nonEmpty"),
    _el("datatype", "datatype"),
    _el("required", "xs:boolean"),
    _el("datatype_description"),
    _el("order", "xs:positiveInteger"),
    _el("description"),
    _list("values", "value", _all(_el("key", "nonEmpty"), _el("name")), optional=True),
)
_UPDATE = _all(
    _el("update_id", "nonEmpty"),
    _el("service_request_id", "nonEmpty"),
    _el("status", "status"),
    _el("updated_datetime", "w3c"),
    _el("description"),
    _el("media_url", optional=True),
    _el("external_status_code", optional=True),
)

XSD: dict[str, etree.XMLSchema] = {
    "discovery": _schema(
        '<xs:element name="discovery">'
        + _all(
            _el("changeset", "nonEmpty"),
            _el("contact"),
            _el("key_service"),
            _list(
                "endpoints",
                "endpoint",
                _all(
                    _el("specification", "nonEmpty"),
                    _el("url", "nonEmpty"),
                    _el("changeset", "nonEmpty"),
                    _el("type", "nonEmpty"),
                    _list("formats", "format", "", min_items=1),
                ),
                min_items=1,
            ),
        )
        + "</xs:element>"
    ),
    "services": _schema(
        _list(
            "services",
            "service",
            _all(
                _el("service_code", "nonEmpty"),
                _el("service_name", "nonEmpty"),
                _el("description"),
                _el("metadata", "xs:boolean"),
                _el("type", "serviceType"),
                _el("keywords"),
                _el("group"),
            ),
        )
    ),
    "service_definition": _schema(
        '<xs:element name="service_definition">'
        + _all(_el("service_code", "nonEmpty"), _list("attributes", "attribute", _ATTRIBUTE))
        + "</xs:element>"
    ),
    "requests": _schema(_list("service_requests", "request", _all(*_REQUEST_FIELDS, *_EXTENSIONS))),
    "posted": _schema(
        _list(
            "service_requests",
            "request",
            _all(
                _el("service_request_id", "nonEmpty", optional=True),
                _el("token", "nonEmpty", optional=True),
                _el("service_notice", optional=True),
                _el("account_id", optional=True),
            ),
            min_items=1,
        )
    ),
    "token": _schema(
        _list(
            "service_requests",
            "request",
            _all(_el("service_request_id", "nonEmpty"), _el("token", "nonEmpty")),
            min_items=1,
        )
    ),
    "errors": _schema(
        _list(
            "errors",
            "error",
            _all(_el("code", "xs:positiveInteger"), _el("description", "nonEmpty")),
            min_items=1,
        )
    ),
    # mySociety's adapter names the root service_request_updates; FixMyStreet's own tests
    # use service_requests_updates (FixMyStreet ignores the root's name).
    "updates": _schema(
        _list("service_request_updates", "request_update", _UPDATE)
        + _list("service_requests_updates", "request_update", _UPDATE)
    ),
    # The answer to FixMyStreet's POST servicerequestupdates: it reads
    # request_update[0].update_id.
    "posted_update": _schema(
        _list(
            "service_request_updates",
            "request_update",
            _all(_el("update_id", "nonEmpty")),
            min_items=1,
        )
    ),
}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def json_schemas(*, strict: bool) -> dict[str, dict[str, Any]]:
    """Return the JSON Schemas; ``strict`` also demands string ids and every field."""
    ident: dict[str, Any] = (
        {"type": "string", "minLength": 1} if strict else {"type": ["string", "integer"]}
    )
    w3c = {"type": "string", "pattern": f"^{W3C}$"}

    def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": False,
        }

    request_props: dict[str, Any] = {
        "service_request_id": ident,
        "status": {"enum": ["open", "closed"]},
        "status_notes": _nullable("string"),
        "service_name": {"type": "string"},
        "service_code": ident,
        "description": _nullable("string"),
        "agency_responsible": _nullable("string"),
        "service_notice": _nullable("string"),
        "requested_datetime": w3c,
        "updated_datetime": w3c,
        "expected_datetime": {"anyOf": [w3c, {"type": "null"}]},
        "address": _nullable("string"),
        "address_id": {"type": ["string", "integer", "null"]},
        "zipcode": {"type": ["string", "integer", "null"]},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "media_url": _nullable("string"),
    }
    extension_props: dict[str, Any] = {
        "attributes": {
            "type": "array",
            "items": obj(
                {
                    "code": {"type": "string"},
                    "label": {"type": "string"},
                    "value": {"type": "string"},
                    "name": _nullable("string"),
                }
            ),
        },
        "extended_attributes": obj(
            {
                "channel": {"type": "string"},
                "ward": _nullable("string"),
                "ward_name": _nullable("string"),
                "duplicate": {"type": "boolean"},
                "parent_service_request_id": {"anyOf": [ident, {"type": "null"}]},
                "status_detail": {"type": "string"},
                "photos": {
                    "type": "array",
                    "items": obj(
                        {
                            "media_url": {"type": "string"},
                            "thumbnail_url": {"type": "string"},
                            "title": {"type": "string"},
                            "width": {"type": "integer", "minimum": 1},
                            "height": {"type": "integer", "minimum": 1},
                            "created_at": w3c,
                        }
                    ),
                },
            }
        ),
        "notes": {
            "type": "array",
            "items": obj(
                {"datetime": w3c, "description": {"type": "string"}, "type": {"type": "string"}}
            ),
        },
    }
    request = obj(
        {**request_props, **extension_props},
        required=list(request_props) if strict else ["service_request_id"],
    )
    attribute = obj(
        {
            "variable": {"type": "boolean"},
            "code": {"type": "string", "minLength": 1},
            "datatype": {
                "enum": [
                    "string",
                    "number",
                    "datetime",
                    "text",
                    "singlevaluelist",
                    "multivaluelist",
                ]
            },
            "required": {"type": "boolean"},
            "datatype_description": _nullable("string"),
            "order": {"type": "integer", "minimum": 1},
            "description": {"type": "string"},
            "values": {
                "type": "array",
                "items": obj({"key": ident, "name": {"type": "string"}}),
            },
        }
    )
    update = obj(
        {
            "update_id": {"type": "string", "minLength": 1},
            "service_request_id": ident,
            "status": {"enum": ["open", "closed"]},
            "updated_datetime": w3c,
            "description": {"type": "string"},
            "media_url": _nullable("string"),
            "external_status_code": {"type": "string"},
        }
    )
    return {
        "discovery": obj(
            {
                "changeset": {"type": "string", "minLength": 1},
                "contact": {"type": "string"},
                "key_service": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "specification": {"type": "string"},
                            "url": {"type": "string"},
                            "changeset": {"type": "string"},
                            "type": {"type": "string"},
                            "formats": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string"},
                            },
                        }
                    ),
                },
            }
        ),
        "services": {
            "type": "array",
            "items": obj(
                {
                    "service_code": ident,
                    "service_name": {"type": "string"},
                    "description": {"type": "string"},
                    "metadata": {"type": "boolean"},
                    "type": {"enum": ["realtime", "batch", "blackbox"]},
                    "keywords": {"type": "string"},
                    "group": {"type": "string"},
                }
            ),
        },
        "service_definition": obj(
            {
                "service_code": ident,
                "attributes": {"type": "array", "items": attribute},
            }
        ),
        "requests": {"type": "array", "items": request},
        "posted": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": obj(
                {
                    "service_request_id": ident,
                    "token": ident,
                    "service_notice": _nullable("string"),
                    "account_id": {"type": ["string", "integer", "null"]},
                },
                required=["service_request_id", "token"] if strict else [],
            ),
        },
        "token": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": obj({"service_request_id": ident, "token": ident}),
        },
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": obj({"code": {"type": "integer"}, "description": {"type": "string"}}),
        },
        "updates": {"type": "array", "items": update},
        "posted_update": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": obj({"update_id": ident}),
        },
    }


STRICT_JSON = json_schemas(strict=True)


def parse_xml(body: bytes) -> etree._Element:
    """Return the root of an XML document parsed by lxml (no entities, no network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    return etree.fromstring(body, parser=parser)


def check_xml(kind: str, body: bytes, *, ours: bool = True) -> etree._Element:
    """Return the parsed root after checking the document against the ``kind`` shape.

    ``ours`` adds what geo311 promises: the exact declaration, no namespace, and every
    request field present.
    """
    root = parse_xml(body)
    schema = XSD[kind]
    if not schema.validate(root):
        raise AssertionError(f"{kind} XML does not have the spec's shape: {schema.error_log}")
    if ours:
        assert body.startswith(XML_DECLARATION), body[:60]
        assert not root.nsmap, root.nsmap
        assert "{" not in root.tag
    return root


def check_json(kind: str, body: bytes, *, schemas: dict[str, dict[str, Any]] = STRICT_JSON) -> Any:
    """Return the parsed JSON after checking it against the ``kind`` shape."""
    document = json.loads(body)
    jsonschema.validate(document, schemas[kind])
    return document


def text_of(element: etree._Element, path: str) -> str:
    """Return the text at ``path`` under ``element`` ('' for an empty element)."""
    found = element.find(path)
    assert found is not None, f"no <{path}> in <{element.tag}>"
    return found.text or ""


def children(element: etree._Element) -> list[str]:
    return [c.tag for c in element if isinstance(c.tag, str)]


def w3c_ok(value: str) -> bool:
    return re.fullmatch(W3C, value) is not None
