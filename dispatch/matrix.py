"""Travel-time matrices between points: one interface, two providers.

* :class:`StraightLine` — geodesic distance on the WGS84 ellipsoid (pyproj) × a detour factor,
  at a configured speed. Pure; used when no road network is loaded.
* :class:`RoadNetworkMatrix` — shortest driving times on the loaded network. Each point is
  snapped to the nearest routable edge (nearest in metres) at the fraction along it where it
  projects, so a job half-way down a block is reached from both ends of that block; the
  kerb-to-road offset is added at the straight-line speed. The routable edges are read once
  per matrix and searched in process (:func:`network_costs`, SciPy's Dijkstra), with the
  semantics of pgRouting's ``pgr_withPointsCostMatrix`` (:class:`PgRoutingMatrix`, kept as
  the reference it is checked against).

:func:`provider_for` picks the road network when one is loaded, else the straight line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import text
from sqlalchemy.orm import Session

from dispatch.roads import (
    RoadGraph,
    edges_sql,
    get_network,
    keep_trees,
    require_network,
    routable_graph,
    snap,
    spot,
    spot_graph,
)
from geo311.kernel.settings import RoutingSettings

GEOD = Geod(ellps="WGS84")
log = logging.getLogger(__name__)

Point = tuple[float, float]  # (lon, lat) in degrees, EPSG:4326


@dataclass(frozen=True)
class TravelMatrix:
    """Travel from every point to every other: whole seconds, and metres when known.

    ``durations_s[i, j]`` is the time from point i to point j; the diagonal is 0.
    """

    durations_s: NDArray[np.int64]
    distances_m: NDArray[np.int64] | None
    provider: str


class MatrixProvider(Protocol):
    """Anything that turns points into a travel matrix."""

    @property
    def name(self) -> str:
        """Return what the times come from: road_network or straight_line."""
        ...

    def matrix(self, points: Sequence[Point]) -> TravelMatrix:
        """Return the travel matrix between ``points`` (lon, lat)."""
        ...


def geodesic_m(points: Sequence[Point]) -> NDArray[np.float64]:
    """Return the matrix of geodesic distances in metres between ``points`` (lon, lat)."""
    n = len(points)
    if n == 0:
        return np.zeros((0, 0))
    xy = np.asarray(points, dtype=np.float64)
    i, j = np.triu_indices(n, k=1)
    _, _, dist = GEOD.inv(xy[i, 0], xy[i, 1], xy[j, 0], xy[j, 1])
    out = np.zeros((n, n))
    out[i, j] = dist
    out[j, i] = dist
    return out


@dataclass(frozen=True)
class StraightLine:
    """Geodesic distance × ``detour_factor`` at ``speed_kmh``."""

    speed_kmh: float
    detour_factor: float = 1.0
    name: str = "straight_line"

    def __post_init__(self) -> None:
        if self.speed_kmh <= 0 or self.detour_factor < 1:
            raise ValueError("speed_kmh must be > 0 and detour_factor >= 1")

    def matrix(self, points: Sequence[Point]) -> TravelMatrix:
        road_m = geodesic_m(points) * self.detour_factor
        seconds = road_m / (self.speed_kmh / 3.6)
        return TravelMatrix(
            durations_s=np.rint(seconds).astype(np.int64),
            distances_m=np.rint(road_m).astype(np.int64),
            provider=self.name,
        )


class _OnTheRoads:
    """Travel on the jurisdiction's road network within one session: points snapped to it,
    shortest costs between the snapped spots (:meth:`_costs`), kerb offsets added."""

    name = "road_network"

    def __init__(
        self,
        session: Session,
        *,
        jurisdiction_id: int,
        access_speed_kmh: float,
        with_distances: bool = False,
    ) -> None:
        require_network(session, jurisdiction_id=jurisdiction_id)
        self.session = session
        self.jurisdiction_id = jurisdiction_id
        self.access_speed_kmh = access_speed_kmh
        self.with_distances = with_distances

    def matrix(self, points: Sequence[Point]) -> TravelMatrix:
        n = len(points)
        if n == 0:
            empty = np.zeros((0, 0), dtype=np.int64)
            return TravelMatrix(empty, empty if self.with_distances else None, self.name)
        snaps = snap(self.session, jurisdiction_id=self.jurisdiction_id, points=points)
        offsets_m = np.array([s.offset_m for s in snaps])
        # pgRouting folds a point at an edge's very end into the vertex there, and two points
        # at the same spot into one: distinct spots strictly inside edges, once each (the
        # in-process search keeps the same spots, so both give the same times).
        spots: dict[tuple[int, float], int] = {}
        index = np.empty(n, dtype=np.int64)
        for k, s in enumerate(snaps):
            index[k] = spots.setdefault(spot(s), len(spots))
        by_time, by_length = self._costs(list(spots), with_lengths=self.with_distances)
        seconds = _no_gaps(by_time)[np.ix_(index, index)]
        seconds += (offsets_m[:, None] + offsets_m[None, :]) / (self.access_speed_kmh / 3.6)
        np.fill_diagonal(seconds, 0.0)
        metres = None
        if by_length is not None:
            m = _no_gaps(by_length)[np.ix_(index, index)]
            m += offsets_m[:, None] + offsets_m[None, :]
            np.fill_diagonal(m, 0.0)
            metres = np.rint(m).astype(np.int64)
        return TravelMatrix(np.rint(seconds).astype(np.int64), metres, self.name)

    def _costs(
        self, spots: list[tuple[int, float]], *, with_lengths: bool
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        """Return the fastest times (s) between spots, and the shortest lengths (m) if asked;
        NaN where there is no path."""
        raise NotImplementedError


class RoadNetworkMatrix(_OnTheRoads):
    """Driving times on the jurisdiction's road network: the routable edges are read once and
    the shortest paths are searched in process (SciPy's Dijkstra), a tenth of a second for a
    city day where pgRouting's matrix took seconds (``bench/city_day.py``)."""

    def _costs(
        self, spots: list[tuple[int, float]], *, with_lengths: bool
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        graph = routable_graph(self.session, jurisdiction_id=self.jurisdiction_id)
        by_time = network_costs(graph, spots, by="time")
        by_length = network_costs(graph, spots, by="length") if with_lengths else None
        return by_time, by_length


class PgRoutingMatrix(_OnTheRoads):
    """The same times from pgRouting's ``pgr_withPointsCostMatrix``, in the database.

    Kept as the reference the in-process search is checked against (tests, and the "before"
    of ``bench/city_day.py``); plans use :class:`RoadNetworkMatrix`.
    """

    def _costs(
        self, spots: list[tuple[int, float]], *, with_lengths: bool
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        by_time = self._pgr_costs(edges_sql(self.jurisdiction_id), spots)
        by_length = None
        if with_lengths:
            # pgRouting's input is SQL text; the one value in it is an int.
            length_edges = (
                "SELECT id, source, target, "  # noqa: S608
                "CASE WHEN cost_s < 0 THEN -1 ELSE length_m END AS cost, "
                "CASE WHEN reverse_cost_s < 0 THEN -1 ELSE length_m END AS reverse_cost "
                f"FROM road_edges WHERE jurisdiction_id = {int(self.jurisdiction_id)}"
            )
            by_length = self._pgr_costs(length_edges, spots)
        return by_time, by_length

    def _pgr_costs(self, edges: str, spots: list[tuple[int, float]]) -> NDArray[np.float64]:
        n = len(spots)
        costs = np.full((n, n), np.nan)
        np.fill_diagonal(costs, 0.0)
        if n > 1:
            # Point ids are negative in pgRouting's arrays; every value here is a number.
            values = ", ".join(f"({k + 1}, {e}, {f!r})" for k, (e, f) in enumerate(spots))
            points_sql = f"SELECT * FROM (VALUES {values}) AS p(pid, edge_id, fraction)"  # noqa: S608
            # Three arrays in one row rather than a row per pair: a million pairs arrive in
            # a second instead of several.
            frm, to, cost = self.session.execute(
                text(
                    "SELECT array_agg(start_vid), array_agg(end_vid), array_agg(agg_cost) "
                    "FROM pgr_withPointsCostMatrix("
                    ":edges, :points, CAST(:pids AS bigint[]), directed => true, "
                    "driving_side => 'b') WHERE start_vid < 0 AND end_vid < 0"
                ),
                {"edges": edges, "points": points_sql, "pids": [-(k + 1) for k in range(n)]},
            ).one()
            if frm:
                rows = -np.asarray(frm, dtype=np.int64) - 1
                cols = -np.asarray(to, dtype=np.int64) - 1
                costs[rows, cols] = np.asarray(cost, dtype=np.float64)
        return costs


def _no_gaps(costs: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return ``costs`` with pairs that have no path (NaN) made very expensive."""
    gaps = np.isnan(costs)
    if gaps.any():
        # Cannot happen on the strongly connected core; never let it pass as free travel.
        log.warning("%d pairs have no road path; using a large travel time", gaps.sum())
        worst = np.nanmax(costs)
        costs = np.where(gaps, 10 * worst if worst > 0 else 1e7, costs)
    return costs


# Sources per Dijkstra batch: bounds the batch's answer (sources × nodes floats) on a large
# network to about 80 MB.
_BATCH_CELLS = 10_000_000


def network_costs(
    graph: RoadGraph, spots: Sequence[tuple[int, float]], *, by: Literal["time", "length"]
) -> NDArray[np.float64]:
    """Return the shortest costs between spots (edge id, fraction along it from its source)
    on the directed road graph: row i, column j is from spot i to spot j; NaN where there is
    no path. How spots join the roads: :func:`dispatch.roads.spot_graph`.
    """
    p = len(spots)
    joined = spot_graph(graph, spots, by=by)
    size = joined.first_spot + p
    out = np.empty((p, p))
    step = max(1, _BATCH_CELLS // size)
    if by == "time" and 0 < p <= step:
        # One batch: its trees are kept, and the plan's route lines follow them.
        sources = np.arange(joined.first_spot, joined.first_spot + p)
        found, came_from = dijkstra(
            joined.adjacency, directed=True, indices=sources, return_predecessors=True
        )
        out[:] = found[:, joined.first_spot :]
        keep_trees(graph, spots, joined, came_from)
    else:
        for begin in range(0, p, step):
            sources = np.arange(joined.first_spot + begin, joined.first_spot + min(begin + step, p))
            found = dijkstra(joined.adjacency, directed=True, indices=sources)
            out[begin : begin + len(sources)] = found[:, joined.first_spot :]
    out[np.isinf(out)] = np.nan
    # The tiny floor on zero-cost arcs must not show as a cost of its own.
    np.fill_diagonal(out, 0.0)
    return out


def provider_for(
    session: Session, *, jurisdiction_id: int, routing: RoutingSettings
) -> MatrixProvider:
    """Return the road network matrix when a network is loaded, else the straight line."""
    network = get_network(session, jurisdiction_id=jurisdiction_id)
    if network is not None and network.routable_edges > 0:
        return RoadNetworkMatrix(
            session, jurisdiction_id=jurisdiction_id, access_speed_kmh=routing.speed_kmh
        )
    return StraightLine(speed_kmh=routing.speed_kmh, detour_factor=routing.detour_factor)
