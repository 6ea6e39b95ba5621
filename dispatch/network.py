"""A routable road graph from road centrelines: split at junctions, costed in seconds. No I/O.

Input is a sequence of :class:`RoadLine` (from an OSM file, or the demo city's streets); the
output :class:`Network` has vertices at junctions and dead ends, and edges between them that
carry their length in metres (geodesic, WGS84) and pgRouting's ``cost``/``reverse_cost`` in
seconds (negative: that direction is closed).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyproj import Geod

GEOD = Geod(ellps="WGS84")

# Free-flow speeds a crew vehicle keeps in a city, km/h, by OSM highway class. Below the legal
# limits on purpose: junctions, parking and traffic eat into them.
DEFAULT_SPEEDS_KMH: dict[str, float] = {
    "motorway": 80.0,
    "motorway_link": 50.0,
    "trunk": 60.0,
    "trunk_link": 40.0,
    "primary": 40.0,
    "primary_link": 30.0,
    "secondary": 35.0,
    "secondary_link": 30.0,
    "tertiary": 30.0,
    "tertiary_link": 25.0,
    "unclassified": 25.0,
    "residential": 25.0,
    "road": 25.0,
    "living_street": 10.0,
    "service": 15.0,
}
# OSM access values that shut out a service vehicle.
CLOSED_ACCESS = frozenset({"no", "private", "agricultural", "forestry", "delivery"})

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$")


@dataclass(frozen=True)
class RoadLine:
    """One road centreline: lon/lat coordinates, and the node keys that join it to others.

    ``nodes`` names each coordinate (OSM node ids); two lines meet where they share a node.
    None: coordinates themselves are the keys (rounded to 1e-7°). ``oneway`` is 1 (along the
    line only), -1 (against it only) or 0 (both ways).
    """

    coords: tuple[tuple[float, float], ...]
    highway: str
    name: str | None = None
    oneway: int = 0
    maxspeed_kmh: float | None = None
    nodes: tuple[int, ...] | None = None
    way_id: int | None = None


@dataclass(frozen=True)
class Vertex:
    id: int
    lon: float
    lat: float
    osm_node_id: int | None


@dataclass(frozen=True)
class Edge:
    id: int
    source: int
    target: int
    length_m: float
    cost_s: float
    reverse_cost_s: float
    coords: tuple[tuple[float, float], ...]
    highway: str
    name: str | None
    way_id: int | None


@dataclass(frozen=True)
class Network:
    vertices: tuple[Vertex, ...]
    edges: tuple[Edge, ...]

    @property
    def max_speed_kmh(self) -> float:
        """Return the fastest speed on any edge, km/h (0 for an empty network)."""
        speeds = [
            3.6 * e.length_m / c for e in self.edges for c in (e.cost_s, e.reverse_cost_s) if c > 0
        ]
        return max(speeds, default=0.0)


def parse_maxspeed(value: str | None) -> float | None:
    """Return an OSM ``maxspeed`` in km/h ("50", "30 mph"), or None when it is not a number."""
    if not value:
        return None
    match = _NUMBER.match(value)
    if match is None:
        return None
    speed = float(match.group(1))
    return speed * 1.609344 if match.group(2) == "mph" else speed


def parse_oneway(tags: Mapping[str, str]) -> int:
    """Return 1, -1 or 0 for the direction(s) a vehicle may drive a way with these tags."""
    value = tags.get("oneway", "")
    if value in ("yes", "true", "1"):
        return 1
    if value in ("-1", "reverse"):
        return -1
    if value in ("no", "false", "0"):
        return 0
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") in (
        "motorway",
        "motorway_link",
    ):
        return 1
    return 0


def speed_kmh(line: RoadLine, speeds: Mapping[str, float]) -> float:
    """Return the speed on ``line``: its class's speed, capped by its posted limit."""
    speed = speeds.get(line.highway, speeds.get("road", 25.0))
    if line.maxspeed_kmh is not None and line.maxspeed_kmh > 0:
        speed = min(speed, line.maxspeed_kmh)
    return speed


def build_network(
    lines: Iterable[RoadLine], *, speeds_kmh: Mapping[str, float] | None = None
) -> Network:
    """Return the graph of ``lines``: one vertex per junction or end, one edge between each."""
    speeds = {**DEFAULT_SPEEDS_KMH, **(speeds_kmh or {})}
    keyed: list[tuple[RoadLine, list[Hashable]]] = []
    uses: dict[Hashable, int] = {}
    for line in lines:
        if len(line.coords) < 2:
            continue
        keys: list[Hashable] = (
            list(line.nodes)
            if line.nodes is not None
            else [(round(lon, 7), round(lat, 7)) for lon, lat in line.coords]
        )
        keyed.append((line, keys))
        for key in keys:
            uses[key] = uses.get(key, 0) + 1

    vertex_of: dict[Hashable, Vertex] = {}
    edges: list[Edge] = []

    def vertex(key: Hashable, lon: float, lat: float) -> int:
        found = vertex_of.get(key)
        if found is None:
            osm_id = key if isinstance(key, int) else None
            found = vertex_of[key] = Vertex(len(vertex_of) + 1, lon, lat, osm_id)
        return found.id

    for line, keys in keyed:
        mps = speed_kmh(line, speeds) / 3.6
        # Cut the line at every node another line (or this one, again) passes through.
        cuts = [0, *(k for k in range(1, len(keys) - 1) if uses[keys[k]] >= 2), len(keys) - 1]
        for a, b in itertools.pairwise(cuts):
            coords = line.coords[a : b + 1]
            if b - a == 1 and keys[a] == keys[b]:
                continue  # a node repeated back to back, not a segment
            length_m = float(GEOD.line_length([c[0] for c in coords], [c[1] for c in coords]))
            seconds = length_m / mps
            edges.append(
                Edge(
                    id=len(edges) + 1,
                    source=vertex(keys[a], *coords[0]),
                    target=vertex(keys[b], *coords[-1]),
                    length_m=length_m,
                    cost_s=seconds if line.oneway >= 0 else -1.0,
                    reverse_cost_s=seconds if line.oneway <= 0 else -1.0,
                    coords=tuple(coords),
                    highway=line.highway,
                    name=line.name,
                    way_id=line.way_id,
                )
            )
    return Network(vertices=tuple(vertex_of.values()), edges=tuple(edges))


def lines_from_osm(path: str, *, highways: Sequence[str] | None = None) -> list[RoadLine]:
    """Return the drivable roads of an OSM file (.osm.pbf, .osm, .osm.bz2) as RoadLines.

    Ways tagged with a ``highway`` class in ``highways`` (default: the classes with a default
    speed) and no access restriction for a service vehicle; node locations come from the file.
    """
    import osmium

    wanted = set(highways or DEFAULT_SPEEDS_KMH)
    out: list[RoadLine] = []
    processor = (
        osmium.FileProcessor(path, osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for way in processor:
        if not isinstance(way, osmium.osm.Way):
            continue
        tags = {t.k: t.v for t in way.tags}
        highway = tags.get("highway", "")
        if highway not in wanted:
            continue
        access = tags.get("motor_vehicle") or tags.get("vehicle") or tags.get("access")
        if access in CLOSED_ACCESS or tags.get("area") == "yes":
            continue
        coords: list[tuple[float, float]] = []
        nodes: list[int] = []
        for node in way.nodes:
            if not node.location.valid():
                continue  # a node outside the extract: the way is clipped there
            coords.append((node.location.lon, node.location.lat))
            nodes.append(node.ref)
        if len(coords) < 2:
            continue
        out.append(
            RoadLine(
                coords=tuple(coords),
                highway=highway,
                name=tags.get("name"),
                oneway=parse_oneway(tags),
                maxspeed_kmh=parse_maxspeed(tags.get("maxspeed")),
                nodes=tuple(nodes),
                way_id=way.id,
            )
        )
    return out
