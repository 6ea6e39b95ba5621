"""What the report API sends back (the public view carries no contact details)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from geo311.kernel.fields import LonLat


class PointGeoJSON(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: LonLat = Field(description="[lon, lat] in EPSG:4326")


class WardOut(BaseModel):
    code: str
    name: str


class AssetOut(BaseModel):
    id: int
    type: str
    external_id: str
    name: str | None
    distance_m: float = Field(description="From the report's point to the asset, metres")


class CategoryOut(BaseModel):
    code: str
    name: str
    group: str
    asset_type: str | None
    sla_hours: float
    description: str


class ReportOut(BaseModel):
    """A report as the public sees it."""

    tracking_id: str
    status: str
    category: str
    description: str
    ward: WardOut | None
    asset: AssetOut | None
    location: PointGeoJSON
    location_source: Literal["pin", "exif", "address", "import"]
    photo_url: str | None
    thumbnail_url: str | None
    reported_at: datetime
    updated_at: datetime
    report_count: int = Field(
        description="How many reports the problem has, this one included: other residents' "
        "reports of the same problem join it, and all of them follow its status"
    )


class ContactOut(BaseModel):
    email: str | None
    phone: str | None
    language: str


class StaffReportOut(ReportOut):
    """A report as staff see it: with the requester's contact and the incident id."""

    incident_id: int
    channel: str
    contact: ContactOut | None
