"""What the Open311 API sends back, field by field in the spec's order.

``formats`` renders these as XML (list wrappers and element names from the spec) or JSON
(bare arrays at the root). Requester contact details have no field here, on purpose.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ServiceOut(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="Whether GET services/{code} has questions to ask")
    type: str = "realtime"
    keywords: str
    group: str


class ChoiceOut(BaseModel):
    key: str
    name: str


class AttributeOut(BaseModel):
    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[ChoiceOut]


class ServiceDefinitionOut(BaseModel):
    service_code: str
    attributes: list[AttributeOut]


class EndpointOut(BaseModel):
    specification: str
    url: str
    changeset: datetime
    type: str
    formats: list[str]


class DiscoveryOut(BaseModel):
    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[EndpointOut]


class PostedRequestOut(BaseModel):
    """The answer to POST requests: the id at once (realtime), and a token for clients that
    only follow tokens."""

    service_request_id: str
    token: str
    service_notice: str | None
    account_id: str | None = None


class PostedUpdateOut(BaseModel):
    """The answer to POST servicerequestupdates: the id the update has in GET
    servicerequestupdates for that request (so the client knows its own update again)."""

    update_id: str


class TokenOut(BaseModel):
    service_request_id: str
    token: str


class PhotoOut(BaseModel):
    media_url: str
    thumbnail_url: str
    title: str
    width: int
    height: int
    created_at: datetime


class NoteOut(BaseModel):
    at: datetime = Field(serialization_alias="datetime")
    description: str
    type: str


class AttributeAnswerOut(BaseModel):
    """One answer to a category question: the attribute's code and words, the value sent and,
    for list attributes, the chosen option's name."""

    code: str
    label: str
    value: str
    name: str | None


class ExtendedAttributesOut(BaseModel):
    channel: str
    ward: str | None
    ward_name: str | None
    duplicate: bool
    parent_service_request_id: str | None
    status_detail: str = Field(description="geo311's own status of the incident")
    photos: list[PhotoOut]


class RequestOut(BaseModel):
    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float
    long: float
    media_url: str | None


class ExtendedRequestOut(RequestOut):
    """A request with ``extensions=true``: where dedup, the ward and the history show."""

    attributes: list[AttributeAnswerOut]
    extended_attributes: ExtendedAttributesOut
    notes: list[NoteOut]


class UpdateOut(BaseModel):
    """One entry of servicerequestupdates (the FixMyStreet family's update feed)."""

    update_id: str
    service_request_id: str
    status: str
    updated_datetime: datetime
    description: str
    media_url: str | None
    external_status_code: str


class ErrorOut(BaseModel):
    code: int
    description: str
