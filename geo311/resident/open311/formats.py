"""GeoReport v2 documents in XML and JSON, shaped exactly as the spec shapes them.

XML: ``<?xml version="1.0" encoding="utf-8"?>``, no namespace, a root element, list wrappers
whose items have the spec's singular names (``<services><service>``,
``<service_requests><request>``, ``<attributes><attribute>``, ``<values><value>`` …),
``true``/``false`` for booleans, an empty element for a missing value.
JSON: the XML root is dropped, so lists are bare arrays and objects bare objects; a missing
value is ``null``. Date-times are W3C with the jurisdiction's offset, to the second.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import BaseModel

Format = Literal["xml", "json"]
FORMATS: tuple[Format, ...] = ("xml", "json")
MEDIA_TYPES: dict[Format, str] = {
    "xml": "text/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

# The element name of one item of each list, by the list's element name.
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "service_request_updates": "request_update",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "photos": "photo",
    "notes": "note",
}
# Characters XML 1.0 cannot carry at all (a resident's text may hold them).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def w3c(value: datetime, tz: tzinfo) -> str:
    """Return ``value`` as a W3C date-time in ``tz``, to the second, with its offset."""
    return value.astimezone(tz).replace(microsecond=0).isoformat()


def _plain(value: Any, tz: tzinfo) -> Any:
    """Return ``value`` with models made dicts and date-times made W3C strings."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, Mapping):
        return {k: _plain(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, tz) for v in value]
    if isinstance(value, datetime):
        return w3c(value, tz)
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return _NOT_XML.sub("", str(value))


def _element(parent: ET.Element, name: str, value: Any) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, child in value.items():
            _element(element, key, child)
    elif isinstance(value, list):
        item = ITEMS[name]
        for child in value:
            _element(element, item, child)
    else:
        element.text = _text(value)


def _xml(root: str, value: Any) -> bytes:
    holder = ET.Element("holder")
    _element(holder, root, value)
    document = holder[0]
    ET.indent(document, space="  ")
    body = ET.tostring(document, encoding="unicode", short_empty_elements=False)
    return (XML_DECLARATION + body + "\n").encode("utf-8")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def render_list(root: str, items: Sequence[BaseModel], fmt: Format, tz: tzinfo) -> bytes:
    """Return a list document: ``<root><item/>…</root>`` in XML, a bare array in JSON."""
    if root not in ITEMS:
        raise ValueError(f"no item name known for list {root!r}")
    plain = _plain(list(items), tz)
    return _xml(root, plain) if fmt == "xml" else _json(plain)


def render_object(root: str, obj: BaseModel, fmt: Format, tz: tzinfo) -> bytes:
    """Return an object document: ``<root>…</root>`` in XML, a bare object in JSON."""
    plain = _plain(obj, tz)
    return _xml(root, plain) if fmt == "xml" else _json(plain)
