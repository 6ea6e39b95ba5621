"""The road network in PostGIS: load a graph into ``road_vertices``/``road_edges``, mark the
part pgRouting can route every job in, and say what is loaded."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from sqlalchemy import delete, select, text
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
