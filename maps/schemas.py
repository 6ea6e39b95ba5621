"""What the map pages' JSON endpoints answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class MapIncidentOut(BaseModel):
    """One marker of the public map: no requester, no contact, no photo."""

    tracking_id: str = Field(description="The first report's tracking number")
    category: str
    category_name: str
    status: str
    fixed: bool = Field(description="Completed or closed (recently: see fixed_days)")
    lon: float
    lat: float
    description: str = Field(description="The first report's text, as typed: show it escaped")
    report_count: int
    opened_at: datetime
    closed_at: datetime | None


class MapIncidentsOut(BaseModel):
    """The open incidents and those fixed in the last ``fixed_days`` days, newest first."""

    incidents: list[MapIncidentOut]
    fixed_days: int
    truncated: bool = Field(description="More matched than the page size; the newest are shown")


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (lon/lat, RFC 7946)."""

    type: str = "FeatureCollection"
    features: list[dict[str, Any]]


class BasemapOut(BaseModel):
    """geo311's own light basemap for a bounding box: ward outlines and street lines."""

    bbox: tuple[float, float, float, float] = Field(
        description="The box answered for (west, south, east, north), inside the city's extent"
    )
    wards: FeatureCollection
    streets: FeatureCollection
    streets_truncated: bool = Field(description="More streets matched; the longest are shown")


class FollowIn(BaseModel):
    """Ask for e-mail updates about a report (a confirmation mail goes to the address)."""

    email: str = Field(max_length=320, description="Where the updates should go")
    language: str = Field(default="en", max_length=16, description="en or es")


class FollowOut(BaseModel):
    status: Literal["confirmation_sent"] = "confirmation_sent"
    detail: str


class WardRefOut(BaseModel):
    code: str
    name: str


class WardAtOut(BaseModel):
    """The ward a point falls in on the ward map in force now; ward is null outside the city."""

    ward: WardRefOut | None


class NearbyIncidentOut(BaseModel):
    """An open incident near the pin that a new report could be about: public fields only."""

    tracking_id: str = Field(description="Its first report's tracking number (follow this)")
    category: str
    category_name: str
    status: str
    distance_m: float = Field(description="From the pin, in metres")
    opened_at: datetime
    report_count: int
    photo_url: str | None = Field(description="The first report's public photo, if any")
    lon: float
    lat: float


class NearbyOut(BaseModel):
    """The open incidents of the category's group within its dedup radius, nearest first."""

    radius_m: float
    incidents: list[NearbyIncidentOut]
