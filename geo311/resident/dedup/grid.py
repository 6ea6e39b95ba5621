"""Short distances on the WGS84 ellipsoid, and the grid cells that concurrent intake locks.
Pure: no database, no I/O."""

from __future__ import annotations

import hashlib
import math

_A = 6_378_137.0  # WGS84 semi-major axis, metres
_E2 = 0.006_694_379_990_14  # WGS84 first eccentricity squared
# Lower bounds of metres per degree, so that degree boxes computed from them always cover
# the disk they stand for: a degree of latitude is at least 110,574 m (at the equator).
_MIN_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_EQUATOR = 111_320.0


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Return (metres per degree of longitude, metres per degree of latitude) at ``lat``.

    From the ellipsoid's radii of curvature; exact at that latitude.
    """
    phi = math.radians(lat)
    s2 = math.sin(phi) ** 2
    w = math.sqrt(1.0 - _E2 * s2)
    n = _A / w  # prime vertical
    m = _A * (1.0 - _E2) / (w * w * w)  # meridian
    return (math.radians(1.0) * n * math.cos(phi), math.radians(1.0) * m)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Return the distance in metres between two nearby points (within a few kilometres).

    Uses the ellipsoid's curvature at the mean latitude: within a millimetre of the geodesic
    (PostGIS geography) for the tens of metres dedup works with.
    """
    kx, ky = metres_per_degree((lat1 + lat2) / 2.0)
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * ky)


def degree_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """Return (min_lon, min_lat, max_lon, max_lat) of a box that surely covers the disk of
    ``radius_m`` metres around the point (it errs on the large side)."""
    pad_m = radius_m * 1.01 + 0.5
    dlat = pad_m / _MIN_M_PER_DEG_LAT
    far_lat = min(89.9, abs(lat) + dlat)
    dlon = min(180.0, pad_m / (_M_PER_DEG_EQUATOR * 0.99 * math.cos(math.radians(far_lat))))
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def lock_keys(
    *,
    jurisdiction_id: int,
    group_code: str,
    lon: float,
    lat: float,
    radius_m: float,
    cell_m: float,
    asset_id: int | None = None,
) -> list[int]:
    """Return the advisory-lock keys a new report must hold before it looks for duplicates,
    sorted so that every transaction takes them in the same order (no deadlock).

    The report locks every grid cell that its disk of ``radius_m`` (its category's radius)
    touches, its own cell among them. Two reports of one category group that could match are
    at most the larger of their two radii apart, so the one with the larger radius locks the
    other's cell too: they share a key and run one after the other. Reports on the same asset
    also share the asset's key. Keys are 64-bit hashes of readable names.
    """
    cell_deg = cell_m / _M_PER_DEG_EQUATOR
    min_lon, min_lat, max_lon, max_lat = degree_box(lon, lat, radius_m)
    names = [
        f"dedup:{jurisdiction_id}:{group_code}:cell:{ix}:{iy}"
        for ix in range(math.floor(min_lon / cell_deg), math.floor(max_lon / cell_deg) + 1)
        for iy in range(math.floor(min_lat / cell_deg), math.floor(max_lat / cell_deg) + 1)
    ]
    if asset_id is not None:
        names.append(f"dedup:{jurisdiction_id}:{group_code}:asset:{asset_id}")
    return sorted({_key(name) for name in names})


def _key(name: str) -> int:
    """Return a signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )
