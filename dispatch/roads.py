"""The road network in PostGIS: load a graph into ``road_vertices``/``road_edges``, mark the
part pgRouting can route every job in, snap points to it, draw routes on it."""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from dispatch.errors import NoRoadNetwork
from dispatch.models import RoadEdge, RoadNetwork, RoadVertex
from dispatch.network import Network


@dataclass(frozen=True)
class LoadSummary:
    """What a load stored: counts, and the fastest speed on the network (km/h)."""

    vertices: int
    edges: int
    routable_edges: int
    max_speed_kmh: float


def edges_sql(jurisdiction_id: int) -> str:
    """Return pgRouting's edges query for a jurisdiction's network (costs in seconds)."""
    # pgRouting takes its input as SQL text; the only value in it is an int we cast.
    return (
        "SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost "  # noqa: S608
        f"FROM road_edges WHERE jurisdiction_id = {int(jurisdiction_id)}"
    )


def load_network(
    session: Session, *, jurisdiction_id: int, network: Network, source: str
) -> LoadSummary:
    """Replace the jurisdiction's road network with ``network``; return what was stored.

    Edges of the largest strongly connected component are marked routable: snapping job
    locations only onto those guarantees a route between any two of them.
    """
    jid = int(jurisdiction_id)
    # Two loads at once would interleave deletes and inserts: the second waits for the first.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"geo311.roads:{jid}"}
    )
    session.execute(delete(RoadEdge).where(RoadEdge.jurisdiction_id == jid))
    session.execute(delete(RoadVertex).where(RoadVertex.jurisdiction_id == jid))
    session.execute(delete(RoadNetwork).where(RoadNetwork.jurisdiction_id == jid))
    session.flush()
    raw = session.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("road loading needs a psycopg 3 connection")
    with raw.cursor() as cur:
        with cur.copy(
            "COPY road_vertices (jurisdiction_id, id, osm_node_id, geom) FROM STDIN"
        ) as cp:
            for v in network.vertices:
                cp.write_row((jid, v.id, v.osm_node_id, f"SRID=4326;POINT({v.lon!r} {v.lat!r})"))
        columns = (
            "jurisdiction_id, id, source, target, cost_s, reverse_cost_s, length_m, highway, "
            "name, osm_way_id, geom"
        )
        with cur.copy(f"COPY road_edges ({columns}) FROM STDIN") as cp:
            for e in network.edges:
                line = ", ".join(f"{lon!r} {lat!r}" for lon, lat in e.coords)
                cp.write_row(
                    (
                        jid,
                        e.id,
                        e.source,
                        e.target,
                        e.cost_s,
                        e.reverse_cost_s,
                        e.length_m,
                        e.highway,
                        e.name,
                        e.way_id,
                        f"SRID=4326;LINESTRING({line})",
                    )
                )
    routable = 0
    if network.edges:
        result = session.execute(
            text(
                "WITH comp AS (SELECT component, node FROM pgr_strongComponents(:edges)), "
                "main AS (SELECT component FROM comp GROUP BY component "
                "         ORDER BY count(*) DESC, component LIMIT 1), "
                "nodes AS (SELECT node FROM comp JOIN main USING (component)) "
                "UPDATE road_edges e SET routable = true "
                "WHERE e.jurisdiction_id = :jid AND e.source IN (SELECT node FROM nodes) "
                "AND e.target IN (SELECT node FROM nodes)"
            ),
            {"edges": edges_sql(jid), "jid": jid},
        )
        routable = int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult
    summary = LoadSummary(
        vertices=len(network.vertices),
        edges=len(network.edges),
        routable_edges=routable,
        max_speed_kmh=network.max_speed_kmh,
    )
    session.add(
        RoadNetwork(
            jurisdiction_id=jid,
            source=source,
            vertices=summary.vertices,
            edges=summary.edges,
            routable_edges=summary.routable_edges,
            max_speed_kmh=summary.max_speed_kmh,
        )
    )
    session.flush()
    return summary


def get_network(session: Session, *, jurisdiction_id: int) -> RoadNetwork | None:
    """Return what is known of the jurisdiction's road network, or None if none is loaded."""
    return session.get(RoadNetwork, jurisdiction_id)


def require_network(session: Session, *, jurisdiction_id: int) -> RoadNetwork:
    """Return the jurisdiction's road network; NoRoadNetwork if none is loaded."""
    network = get_network(session, jurisdiction_id=jurisdiction_id)
    if network is None or network.routable_edges == 0:
        raise NoRoadNetwork(
            "No routable road network is loaded for this jurisdiction: "
            "run `geo311 roads load FILE.osm.pbf`."
        )
    return network


def highway_counts(session: Session, *, jurisdiction_id: int) -> dict[str, int]:
    """Return the number of edges per highway class."""
    rows = session.execute(
        select(RoadEdge.highway, text("count(*)"))
        .where(RoadEdge.jurisdiction_id == jurisdiction_id)
        .group_by(RoadEdge.highway)
        .order_by(text("count(*) DESC"))
    ).all()
    return {str(h): int(n) for h, n in rows}


@dataclass(frozen=True)
class RoadGraph:
    """The routable edges of a network as arrays, one entry per edge, ordered by edge id.

    Costs are pgRouting's: seconds each way, negative where that direction is closed.
    """

    edge_id: NDArray[np.int64]
    source: NDArray[np.int64]
    target: NDArray[np.int64]
    cost_s: NDArray[np.float64]
    reverse_cost_s: NDArray[np.float64]
    length_m: NDArray[np.float64]


# Routable graphs read lately, by jurisdiction and the load they came from: a day plan's
# matrix and each of its route lines search the same graph, which need not cross the wire
# fifty times. A reload gets a new loaded_at, so a stale graph is never used.
_GRAPHS: OrderedDict[tuple[int, datetime, int], RoadGraph] = OrderedDict()
_GRAPHS_KEPT = 8


def routable_graph(session: Session, *, jurisdiction_id: int) -> RoadGraph:
    """Return the routable edges of the jurisdiction's network. NoRoadNetwork if none.

    Only those: a shortest path between two points of the strongly connected core never
    leaves it, so the rest of the network cannot shorten any trip between snapped points.
    """
    network = require_network(session, jurisdiction_id=jurisdiction_id)
    key = (jurisdiction_id, network.loaded_at, network.edges)
    graph = _GRAPHS.get(key)
    if graph is not None:
        _GRAPHS.move_to_end(key)
        return graph
    # Arrays in one row rather than a row per edge: a large city's edges arrive at once.
    row = session.execute(
        text(
            "SELECT array_agg(id ORDER BY id), array_agg(source ORDER BY id), "
            "array_agg(target ORDER BY id), array_agg(cost_s ORDER BY id), "
            "array_agg(reverse_cost_s ORDER BY id), array_agg(length_m ORDER BY id) "
            "FROM road_edges WHERE jurisdiction_id = :jid AND routable"
        ),
        {"jid": jurisdiction_id},
    ).one()
    ids, source, target, cost, reverse, length = (r or [] for r in row)
    graph = RoadGraph(
        edge_id=np.asarray(ids, dtype=np.int64),
        source=np.asarray(source, dtype=np.int64),
        target=np.asarray(target, dtype=np.int64),
        cost_s=np.asarray(cost, dtype=np.float64),
        reverse_cost_s=np.asarray(reverse, dtype=np.float64),
        length_m=np.asarray(length, dtype=np.float64),
    )
    _GRAPHS[key] = graph
    while len(_GRAPHS) > _GRAPHS_KEPT:
        _GRAPHS.popitem(last=False)
    return graph


# Sources per Dijkstra batch: bounds one batch's answer (sources × nodes) on a large network
# to about 80 MB.
_BATCH_CELLS = 10_000_000

# The smallest cost an arc gets: SciPy's sparse graphs drop arcs that weigh exactly zero (a
# zero-length segment), which would cut the road there.
_MIN_ARC = 1e-9


@dataclass(frozen=True)
class SpotGraph:
    """The road graph with spots joined to it, for SciPy's shortest-path search.

    Nodes are the junctions (numbered from 0) and then the spots (spot k is node
    ``first_spot + k``). Each arc is a stretch of one edge: ``arc_edge`` (the edge's row in
    the :class:`RoadGraph`), driven from fraction ``arc_from`` to ``arc_to`` along it.
    """

    adjacency: csr_matrix
    first_spot: int
    arc_tail: NDArray[np.int64]
    arc_head: NDArray[np.int64]
    arc_edge: NDArray[np.int64]
    arc_from: NDArray[np.float64]
    arc_to: NDArray[np.float64]


def spot_graph(
    graph: RoadGraph, spots: Sequence[tuple[int, float]], *, by: Literal["time", "length"]
) -> SpotGraph:
    """Return ``graph`` with ``spots`` (edge id, fraction along it from its source) joined.

    Each spot splits its edge, as pgRouting's points with ``driving_side => 'b'`` do: it is
    reached from either end the edge may be driven from, and left towards either end it may
    be driven to, at the share of the edge's cost it lies along; two spots on one edge are
    linked along it directly. ``by`` length: metres, over the same open directions.
    ValueError if a spot is on no routable edge.
    """
    p = len(spots)
    forward, backward = graph.cost_s, graph.reverse_cost_s
    if by == "length":
        forward = np.where(graph.cost_s < 0, -1.0, graph.length_m)
        backward = np.where(graph.reverse_cost_s < 0, -1.0, graph.length_m)
    m = len(graph.edge_id)
    vertices, ends = np.unique(np.concatenate([graph.source, graph.target]), return_inverse=True)
    src, dst = ends[:m], ends[m:]
    v = len(vertices)
    spot_edge = np.fromiter((e for e, _ in spots), dtype=np.int64, count=p)
    spot_at = np.fromiter((f for _, f in spots), dtype=np.float64, count=p)
    row = np.searchsorted(graph.edge_id, spot_edge)
    if p and (m == 0 or (graph.edge_id[np.minimum(row, m - 1)] != spot_edge).any()):
        raise ValueError("a spot lies on no routable edge")
    whole = np.flatnonzero(~np.isin(np.arange(m), row))
    # Spots along their edges in order: each edge with spots becomes a chain
    # source → first spot → … → last spot → target.
    order = np.lexsort((spot_at, row))
    r, at, node = row[order], spot_at[order], v + order
    first = np.r_[True, r[1:] != r[:-1]]
    last = np.r_[r[1:] != r[:-1], True]
    tail = np.r_[np.where(first, src[r], np.r_[0, node[:-1]]), node[last]]
    head = np.r_[node, dst[r[last]]]
    begin = np.r_[np.where(first, 0.0, np.r_[0.0, at[:-1]]), at[last]]
    end = np.r_[at, np.ones(int(last.sum()))]
    piece = np.r_[r, r[last]]
    ones, zeros = np.ones(len(whole)), np.zeros(len(whole))
    tails = np.concatenate([src[whole], dst[whole], tail, head])
    heads = np.concatenate([dst[whole], src[whole], head, tail])
    edge = np.concatenate([whole, whole, piece, piece])
    start_at = np.concatenate([zeros, ones, begin, end])
    stop_at = np.concatenate([ones, zeros, end, begin])
    share = np.abs(stop_at - start_at)
    full = np.concatenate([forward[whole], backward[whole], forward[piece], backward[piece]])
    costs = share * full
    # A closed direction costs less than zero (the share keeps the sign); loops lead nowhere.
    keep = (costs >= 0) & (tails != heads)
    # Parallel arcs (two roads between the same junctions): the cheaper one, as SciPy would
    # add them up.
    costs = np.maximum(costs, _MIN_ARC)
    ranked = np.flatnonzero(keep)[np.lexsort((costs[keep], heads[keep], tails[keep]))]
    t, h = tails[ranked], heads[ranked]
    ranked = ranked[np.r_[True, (t[1:] != t[:-1]) | (h[1:] != h[:-1])]]
    size = v + p
    return SpotGraph(
        adjacency=csr_matrix((costs[ranked], (tails[ranked], heads[ranked])), shape=(size, size)),
        first_spot=v,
        arc_tail=tails[ranked],
        arc_head=heads[ranked],
        arc_edge=edge[ranked],
        arc_from=start_at[ranked],
        arc_to=stop_at[ranked],
    )


@dataclass(frozen=True)
class Snap:
    """Where a point joins the network: an edge, the fraction along it, and the offset (m)."""

    edge_id: int
    fraction: float
    offset_m: float


def snap(
    session: Session, *, jurisdiction_id: int, points: Sequence[tuple[float, float]]
) -> list[Snap]:
    """Return, per point, the nearest routable edge (in metres) and where on it the point lies.

    Points snapped lately on the same load of the network are not asked again: a day plan's
    route lines pass through the very points its matrix snapped.
    """
    if not points:
        return []
    network = get_network(session, jurisdiction_id=jurisdiction_id)
    if network is None:
        return _snap(session, jurisdiction_id=jurisdiction_id, points=points)
    key = (jurisdiction_id, network.loaded_at, network.edges)
    known = _SNAPS.setdefault(key, {})
    _SNAPS.move_to_end(key)
    while len(_SNAPS) > _GRAPHS_KEPT:
        _SNAPS.popitem(last=False)
    wanted = [(float(x), float(y)) for x, y in points]
    new = list(dict.fromkeys(p for p in wanted if p not in known))
    if new:
        if len(known) + len(new) > _SNAPS_KEPT:
            known.clear()
        known.update(
            zip(new, _snap(session, jurisdiction_id=jurisdiction_id, points=new), strict=True)
        )
    return [known[p] for p in wanted]


# Points snapped lately, per load of a network (as ``_GRAPHS``), at most this many each.
_SNAPS: OrderedDict[tuple[int, datetime, int], dict[tuple[float, float], Snap]] = OrderedDict()
_SNAPS_KEPT = 200_000


def _snap(
    session: Session, *, jurisdiction_id: int, points: Sequence[tuple[float, float]]
) -> list[Snap]:
    rows = session.execute(
        text(
            "SELECT u.i, e.id, ST_LineLocatePoint(e.geom, p.g), "
            "       ST_Distance(e.geom::geography, p.g::geography) "
            "FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) "
            "     WITH ORDINALITY AS u(lon, lat, i) "
            "CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) AS g) p "
            "CROSS JOIN LATERAL ("
            "  SELECT id, geom FROM road_edges "
            "  WHERE jurisdiction_id = :jid AND routable "
            "  ORDER BY geom::geography <-> p.g::geography LIMIT 1) e "
            "ORDER BY u.i"
        ),
        {
            "lons": [float(p[0]) for p in points],
            "lats": [float(p[1]) for p in points],
            "jid": jurisdiction_id,
        },
    ).all()
    if len(rows) != len(points):
        raise RuntimeError("a point could not be snapped: the network has no routable edge")
    return [Snap(int(r[1]), float(r[2]), float(r[3])) for r in rows]


# Fraction of an edge kept clear of its ends when placing a point (a few millimetres):
# pgRouting folds a point at an edge's very end into the vertex there.
EDGE_END = 1e-6


def spot(s: Snap) -> tuple[int, float]:
    """Return where pgRouting places a snapped point: its edge, strictly inside it."""
    return s.edge_id, min(max(s.fraction, EDGE_END), 1.0 - EDGE_END)


def route_line(
    session: Session, *, jurisdiction_id: int, points: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Return the road geometry (lon, lat vertices) of driving through ``points`` in order:
    :func:`route_lines` of one path. NoRoadNetwork if none is loaded."""
    return route_lines(session, jurisdiction_id=jurisdiction_id, paths=[points])[0]


def route_lines(
    session: Session,
    *,
    jurisdiction_id: int,
    paths: Sequence[Sequence[tuple[float, float]]],
) -> list[list[tuple[float, float]]]:
    """Return, per path, the road geometry (lon, lat vertices) of driving through its points
    in order.

    Each leg follows the fastest path on the network between the points' snapped positions
    (searched in process over :func:`spot_graph`, as the travel matrix is), cut at the exact
    spots on the first and last edges; the kerb-to-road connectors are included, so a line
    starts and ends at the points themselves. All paths are drawn together: one snap, one
    search and one read of the edges' lines for a whole day plan, however many routes
    (a route at a time cost three round trips and a graph build each). A path of fewer than
    two points is given back as it is. NoRoadNetwork if none is loaded.
    """
    graph = routable_graph(session, jurisdiction_id=jurisdiction_id)
    drawn = [[(float(x), float(y)) for x, y in path] for path in paths]
    index: dict[tuple[float, float], int] = {}
    for path in drawn:
        if len(path) >= 2:
            for p in path:
                index.setdefault(p, len(index))
    snaps = snap(session, jurisdiction_id=jurisdiction_id, points=list(index))
    # pgRouting's spots (as the matrix places them): points on one spot share a node.
    spots: dict[tuple[int, float], int] = {}
    node_of = [spots.setdefault(spot(s), len(spots)) for s in snaps]
    pids = [[node_of[index[p]] for p in path] if len(path) >= 2 else [] for path in drawn]
    legs = sorted({(a, b) for pid in pids for a, b in itertools.pairwise(pid) if a != b})
    trees = _TREES[0] if _TREES else None
    joined: SpotGraph | None = None
    arcs_of: dict[tuple[int, int], list[int]] = {}
    if legs and trees is not None and trees.graph is graph and all(s in trees.spots for s in spots):
        # The matrix of this plan searched from every one of these spots already: its trees
        # hold the very paths its times were measured on.
        kept = [trees.spots[s] for s in spots]
        joined = trees.joined
        found = _fastest_paths(
            joined, sorted({(kept[a], kept[b]) for a, b in legs}), came_from=trees.came_from
        )
        arcs_of = {(a, b): found[kept[a], kept[b]] for a, b in legs if (kept[a], kept[b]) in found}
    elif legs:
        joined = spot_graph(graph, list(spots), by="time")
        arcs_of = _fastest_paths(joined, legs)
    # A leg driving on through another route's stop crosses its edge in two arcs: drawn as
    # one stretch of the edge, so the stop adds no vertex to this line.
    stretches: dict[tuple[int, float, float], int] = {}
    stretches_of: dict[tuple[int, int], list[int]] = {}
    for leg, leg_arcs in arcs_of.items():
        assert joined is not None  # a leg was searched on it
        arc = np.asarray(leg_arcs, dtype=np.int64)
        edge, begin, end = joined.arc_edge[arc], joined.arc_from[arc], joined.arc_to[arc]
        new = np.r_[True, (edge[1:] != edge[:-1]) | (begin[1:] != end[:-1])]
        first = np.flatnonzero(new)
        last = np.r_[first[1:] - 1, len(arc) - 1]
        stretches_of[leg] = [
            stretches.setdefault(key, len(stretches))
            for key in zip(
                graph.edge_id[edge[first]].tolist(),
                begin[first].tolist(),
                end[last].tolist(),
                strict=True,
            )
        ]
    keys = np.asarray(list(stretches), dtype=np.float64).reshape(-1, 3)
    edge_ids = keys[:, 0].astype(np.int64)
    drawn_stretches = (
        _cut_stretches(
            _edge_lines(session, jurisdiction_id=jurisdiction_id, edge_ids=edge_ids),
            edge_ids,
            keys[:, 1],
            keys[:, 2],
        )
        if len(keys)
        else []
    )
    pieces = {
        leg: np.concatenate([drawn_stretches[k] for k in ks]) if ks else np.empty((0, 2))
        for leg, ks in stretches_of.items()
    }
    out: list[list[tuple[float, float]]] = []
    for path, pid in zip(drawn, pids, strict=True):
        if len(path) < 2:
            out.append(path)
            continue
        chunks = [np.asarray([path[0]], dtype=np.float64)]
        for k in range(len(path) - 1):
            chunks.append(pieces.get((pid[k], pid[k + 1]), np.empty((0, 2))))
            chunks.append(np.asarray([path[k + 1]], dtype=np.float64))
        xy = np.concatenate(chunks)
        # Where one piece ends the next begins: the vertex is drawn once.
        keep = np.r_[True, (xy[1:] != xy[:-1]).any(axis=1)]
        out.append([(float(x), float(y)) for x, y in xy[keep]])
    return out


@dataclass(frozen=True)
class _EdgeLines:
    """Edges' lines end to end: edge k's vertices are ``xy[first[k]:first[k + 1]]``, each at
    ``share`` of the way along its edge (planar length, 0 at the start, 1 at the end)."""

    edge_id: NDArray[np.int64]
    first: NDArray[np.int64]
    xy: NDArray[np.float64]
    share: NDArray[np.float64]


def _edge_lines(
    session: Session, *, jurisdiction_id: int, edge_ids: NDArray[np.int64]
) -> _EdgeLines:
    """Return the lines of the edges, read in one statement, ordered by edge id."""
    wanted = np.unique(edge_ids)
    ids, wkb = session.execute(
        text(
            "SELECT array_agg(id ORDER BY id), array_agg(ST_AsBinary(geom) ORDER BY id) "
            "FROM road_edges WHERE jurisdiction_id = :jid AND id = ANY(:ids)"
        ),
        {"jid": jurisdiction_id, "ids": wanted.tolist()},
    ).one()
    xy, owner = shapely.get_coordinates(
        shapely.from_wkb([bytes(w) for w in wkb]), return_index=True
    )
    first = np.searchsorted(owner, np.arange(len(ids) + 1))
    step = np.hypot(*np.diff(xy, axis=0).T) if len(xy) else np.empty(0)
    step[np.diff(owner) != 0] = 0.0  # no length from one edge's end to the next one's start
    along = np.r_[0.0, np.cumsum(step)]
    along -= along[first[:-1]][owner]
    total = along[first[1:] - 1][owner]
    # A zero-length edge (its ends in one place): its vertices evenly spread, all at one point.
    count = np.diff(first)[owner]
    evenly = (np.arange(len(xy)) - first[:-1][owner]) / np.maximum(count - 1, 1)
    share = np.divide(along, total, out=evenly, where=total > 0)
    return _EdgeLines(np.asarray(ids, dtype=np.int64), first, xy, share)


def _cut_stretches(
    lines: _EdgeLines,
    edge_id: NDArray[np.int64],
    start: NDArray[np.float64],
    stop: NDArray[np.float64],
) -> list[NDArray[np.float64]]:
    """Return, per stretch of an edge, the vertices of the edge's line from share ``start`` to
    ``stop`` of its length (as shapely's ``substring`` measures it), backwards when
    ``stop < start``: the points where it is cut, and the edge's vertices between them."""
    k = np.searchsorted(lines.edge_id, edge_id)
    low, high = np.minimum(start, stop), np.maximum(start, stop)
    # Each edge's shares shifted past the one before, so one search finds a vertex in its edge.
    owner = np.repeat(np.arange(len(lines.edge_id)), np.diff(lines.first))
    key = 2.0 * owner + lines.share
    after_low = np.searchsorted(key, 2.0 * k + low, side="right")
    at_high = np.searchsorted(key, 2.0 * k + high, side="left")
    first, last = lines.first[k], lines.first[k + 1] - 1

    def point(at: NDArray[np.float64], where: NDArray[np.int64]) -> NDArray[np.float64]:
        j = np.clip(where, first + 1, np.maximum(last, first + 1))
        i = j - 1
        j = np.minimum(j, last)
        span = lines.share[j] - lines.share[i]
        t = np.clip(
            np.divide(at - lines.share[i], span, out=np.zeros_like(at), where=span > 0), 0, 1
        )
        return lines.xy[i] + t[:, None] * (lines.xy[j] - lines.xy[i])

    begin, end = point(low, after_low), point(high, at_high)
    out = []
    for n in range(len(k)):
        piece = np.concatenate(
            [
                begin[n : n + 1],
                lines.xy[after_low[n] : max(at_high[n], after_low[n])],
                end[n : n + 1],
            ]
        )
        out.append(piece if start[n] <= stop[n] else piece[::-1])
    return out


@dataclass(frozen=True)
class SearchTrees:
    """The fastest-path trees of a search from every spot (a travel matrix's): the graph it
    ran on, its spots (spot → its number), and each node's predecessor from spot k in row k."""

    graph: RoadGraph
    spots: dict[tuple[int, float], int]
    joined: SpotGraph
    came_from: NDArray[np.int32]


# The latest matrix's trees, at most one (a city day's is a few MB): a day plan draws its route
# lines through the matrix's own spots right after, without searching the network again.
_TREES: list[SearchTrees] = []


def keep_trees(
    graph: RoadGraph,
    spots: Sequence[tuple[int, float]],
    joined: SpotGraph,
    came_from: NDArray[np.int32],
) -> None:
    """Keep a search's trees from every spot for the route lines that follow (replacing the
    last ones kept)."""
    _TREES[:] = [SearchTrees(graph, {s: k for k, s in enumerate(spots)}, joined, came_from)]


def _fastest_paths(
    joined: SpotGraph,
    legs: Sequence[tuple[int, int]],
    *,
    came_from: NDArray[np.int32] | None = None,
) -> dict[tuple[int, int], list[int]]:
    """Return the arcs of the fastest path of each leg (spot, spot); a leg with no path is
    left out (it is drawn straight). ``came_from``: the trees from every spot, when a search
    made them already (row k: from spot k); else the legs' starts are searched here."""
    starts = sorted({a for a, _ in legs})
    if not starts:
        return {}
    # Arcs come sorted by (tail, head), one per pair: a path's arcs are found by bisection.
    size = joined.adjacency.shape[0]
    keys = joined.arc_tail * size + joined.arc_head
    paths: dict[tuple[int, int], list[int]] = {}
    # Searched in batches of sources, as the matrix is: the predecessors of a large network
    # from every stop of a city day at once would not fit in memory.
    step = len(starts) if came_from is not None else max(1, _BATCH_CELLS // size)
    for begin in range(0, len(starts), step):
        batch = starts[begin : begin + step]
        if came_from is not None:
            tree, row_of = came_from, {a: a for a in batch}
        else:
            row_of = {a: k for k, a in enumerate(batch)}
            _, tree = dijkstra(
                joined.adjacency,
                directed=True,
                indices=[joined.first_spot + a for a in batch],
                return_predecessors=True,
            )
        mine = [(a, b) for a, b in legs if a in row_of]
        # Back from every leg's end to its start at once, a step per round; SciPy marks "no
        # predecessor" with a negative.
        rows = np.fromiter((row_of[a] for a, _ in mine), np.int64, len(mine))
        source = joined.first_spot + np.fromiter((a for a, _ in mine), np.int64, len(mine))
        node = joined.first_spot + np.fromiter((b for _, b in mine), np.int64, len(mine))
        trail = [node]
        going = (node != source) & (node >= 0)
        while going.any():
            node = np.where(going, tree[rows, np.maximum(node, 0)], node)
            trail.append(node)
            going = (node != source) & (node >= 0)
        steps = np.stack(trail)  # round × leg, the leg's start repeated once reached
        for k, leg in enumerate(mine):
            if node[k] < 0:
                continue
            path = steps[: int(np.argmax(steps[:, k] == source[k])) + 1, k][::-1]
            arcs = np.searchsorted(keys, path[:-1] * size + path[1:])
            paths[leg] = arcs.tolist()
    return paths


# --- the street network drawn on the map pages ----------------------------------------------


@dataclass(frozen=True)
class StreetLine:
    """A road segment's name, OSM highway class and line (a GeoJSON geometry in lon/lat)."""

    name: str | None
    highway: str
    geometry: dict[str, Any]


def street_lines(
    session: Session,
    *,
    jurisdiction_id: int,
    bbox: tuple[float, float, float, float],
    tolerance_deg: float,
    limit: int,
) -> tuple[list[StreetLine], bool]:
    """Return up to ``limit`` road segments of the loaded network that touch ``bbox`` (west,
    south, east, north), longest first, lines simplified to ``tolerance_deg`` degrees (a drawing
    tolerance); and whether more were left out. No network loaded: ([], False)."""
    west, south, east, north = bbox
    envelope = func.ST_MakeEnvelope(west, south, east, north, 4326)
    rows = session.execute(
        select(
            RoadEdge.name,
            RoadEdge.highway,
            func.ST_AsGeoJSON(func.ST_Simplify(RoadEdge.geom, tolerance_deg), 6).label("geojson"),
        )
        .where(RoadEdge.jurisdiction_id == jurisdiction_id, RoadEdge.geom.op("&&")(envelope))
        .order_by(RoadEdge.length_m.desc(), RoadEdge.id)
        .limit(limit + 1)
    ).all()
    lines = [StreetLine(r.name, r.highway, json.loads(r.geojson)) for r in rows[:limit]]
    return lines, len(rows) > limit
