"""Travel-time matrices: straight line (pure) and the road network in PostGIS (pgRouting)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod

from dispatch import roads
from dispatch.errors import NoRoadNetwork
from dispatch.matrix import (
    PgRoutingMatrix,
    RoadNetworkMatrix,
    StraightLine,
    network_costs,
    provider_for,
)
from dispatch.network import build_network, lines_from_osm
from dispatch.roads import RoadGraph, route_line, snap
from fixtures.demo_city import generate, to_local, to_lonlat
from fixtures.load import demo_road_lines
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings
from layers import service as layers_service

GEOD = Geod(ellps="WGS84")


def test_straight_line_is_geodesic_times_detour_over_speed() -> None:
    points = [(-93.2, 44.95), (-93.1, 44.95), (-93.2, 45.05), (2.35, 48.85)]
    m = StraightLine(speed_kmh=36.0, detour_factor=1.25).matrix(points)
    assert m.provider == "straight_line"
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            metres = GEOD.inv(a[0], a[1], b[0], b[1])[2] * 1.25
            assert m.distances_m is not None
            assert m.distances_m[i, j] == pytest.approx(metres, abs=0.5)
            assert m.durations_s[i, j] == pytest.approx(metres / 10.0, abs=0.5)
    # 0.1° of longitude at 44.95°N is about 7.9 km: at 36 km/h with 1.25 detour, ~16.5 min.
    assert 950 < m.durations_s[0, 1] < 1010
    assert (m.durations_s == m.durations_s.T).all()
    assert (np.diag(m.durations_s) == 0).all()


def test_straight_line_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="speed_kmh"):
        StraightLine(speed_kmh=0)
    with pytest.raises(ValueError, match="detour_factor"):
        StraightLine(speed_kmh=30, detour_factor=0.5)


def _jid(db: Database, slug: str = "roads") -> int:
    with db.session() as session:
        return layers_service.create_jurisdiction(session, slug=slug, name=slug).id


def _demo_network(db: Database) -> int:
    """A new jurisdiction with the demo city's street grid loaded as its road network."""
    jid = _jid(db)
    with db.session() as session:
        roads.load_network(
            session,
            jurisdiction_id=jid,
            network=build_network(demo_road_lines(generate())),
            source="grid",
        )
    return jid


def _demo_points(n: int, seed: int) -> list[tuple[float, float]]:
    """Return n points scattered over the demo city, off the street lines."""
    rng = random.Random(seed)
    return [to_lonlat(rng.uniform(-2900, 2900), rng.uniform(-1900, 1900)) for _ in range(n)]


def test_demo_grid_loads_and_road_times_are_never_shorter_than_straight(db: Database) -> None:
    jid = _jid(db)
    network = build_network(demo_road_lines(generate()))
    with db.session() as session:
        summary = roads.load_network(session, jurisdiction_id=jid, network=network, source="grid")
    assert summary.edges == 1250
    assert summary.routable_edges == 1250  # every street is two-way: one component
    points = _demo_points(40, seed=1)
    with db.session() as session:
        provider = provider_for(session, jurisdiction_id=jid, routing=RoutingSettings())
        assert provider.name == "road_network"
        road = provider.matrix(points)
    # At the network's top speed on a bee line, nobody could be faster than the road times.
    bee = StraightLine(speed_kmh=summary.max_speed_kmh).matrix(points)
    assert road.durations_s.shape == (40, 40)
    assert (road.durations_s >= bee.durations_s - 1).all()
    assert (np.diag(road.durations_s) == 0).all()
    # On a grid of two-way streets, out and back take the same time.
    assert np.abs(road.durations_s - road.durations_s.T).max() <= 1
    # Manhattan distances on a grid: between 1× and √2× the bee line, at 25-35 km/h rather
    # than 35, so between 1× and 2× the bee-line time once trips are long enough for the kerb
    # offsets (up to 100 m at each end) not to count.
    far = bee.distances_m > 1500  # type: ignore[operator]
    ratio = road.durations_s[far] / bee.durations_s[far]
    assert ratio.min() >= 1.0
    assert ratio.max() < 2.1
    assert np.median(ratio) > 1.2


def test_points_on_one_block_are_reached_along_it(db: Database) -> None:
    jid = _demo_network(db)
    # Two points 5 m off Elm St, 60 m apart along it, mid-block: the trip is ~60 m, not a
    # detour round the block.
    a = to_lonlat(-2800 + 20, -1900 + 5)
    b = to_lonlat(-2800 + 80, -1900 + 5)
    with db.session() as session:
        snaps = snap(session, jurisdiction_id=jid, points=[a, b])
        assert snaps[0].edge_id == snaps[1].edge_id
        assert snaps[0].offset_m == pytest.approx(5.0, abs=0.2)
        m = RoadNetworkMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0).matrix([a, b])
    # 60 m at 25 km/h (residential) plus 2 × 5 m at 25 km/h: about 10 s.
    assert 8 <= m.durations_s[0, 1] <= 12


def _length_m(coords: list[tuple[float, float]]) -> float:
    return float(GEOD.line_length([c[0] for c in coords], [c[1] for c in coords]))


def test_route_lines_follow_the_streets(db: Database) -> None:
    jid = _demo_network(db)
    # Mid-block points 8 m off the kerb line: west on Elm St, then north-east on Oak St.
    a = to_lonlat(-2750, -1900 + 8)
    b = to_lonlat(-1250, -1700 - 8)
    c = to_lonlat(650, -1300 + 8)
    with db.session() as session:
        line = route_line(session, jurisdiction_id=jid, points=[a, b, c])
        same_block = route_line(
            session,
            jurisdiction_id=jid,
            points=[to_lonlat(-2780, -1895), to_lonlat(-2720, -1895)],
        )
    assert line[0] == a
    assert line[-1] == c
    assert b in line
    # Every vertex but the three points themselves lies on a street or avenue centre line.
    for lon, lat in line:
        if (lon, lat) in (a, b, c):
            continue
        x, y = to_local(lon, lat)
        on_avenue = abs((x + 2900) % 200) < 0.05 or abs((x + 2900) % 200 - 200) < 0.05
        on_street = abs((y + 1900) % 200) < 0.05 or abs((y + 1900) % 200 - 200) < 0.05
        assert on_avenue or on_street, (x, y)
    # A grid route is at least the Manhattan distance, and no wild detour.
    manhattan = (1500 + 200) + (1900 + 400) + 4 * 8
    assert manhattan - 1 <= _length_m(line) <= manhattan * 1.2
    # Along one block: off the kerb, 60 m down the street, back to the kerb.
    assert len(same_block) == 4
    assert _length_m(same_block) == pytest.approx(60 + 2 * 5, abs=0.5)


def test_a_day_of_route_lines_drawn_together_is_each_route_drawn_alone(db: Database) -> None:
    """A day plan draws all its crews' lines in one search: each is the line its route gets
    drawn alone, though the routes cross and stop on one another's blocks."""
    jid = _demo_network(db)
    rng = random.Random(7)
    places = _demo_points(40, seed=5)
    paths = [rng.sample(places, rng.randint(2, 9)) for _ in range(8)]
    # A crew back at its depot with no stop, and one with a stop at its own depot.
    paths += [[places[0]], [places[1], places[1]]]
    with db.session() as session:
        together = roads.route_lines(session, jurisdiction_id=jid, paths=paths)
        alone = [route_line(session, jurisdiction_id=jid, points=p) for p in paths]
    assert len(together) == len(paths)
    assert together[-2] == [places[0]]
    for path, line, single in zip(paths, together, alone, strict=True):
        assert line[0] == path[0]
        assert line[-1] == path[-1]
        assert all(p in line for p in path)
        if len(single) < 2:
            assert line == single
            continue
        # The same streets: another route's stop may split a block into two vertices more,
        # never move the line.
        drawn, own = shapely.LineString(line), shapely.LineString(single)
        assert drawn.hausdorff_distance(own) < 1e-9
        assert _length_m(line) == pytest.approx(_length_m(single), abs=0.01)
        steps = [GEOD.inv(*a, *b)[2] for a, b in itertools.pairwise(line)]
        assert max(steps) < 260  # block by block, never straight across town


def test_route_lines_after_the_matrix_follow_its_paths_without_a_new_search(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day plan's lines are drawn right after its matrix: they walk the paths the matrix
    measured (no second search of the network), the lines a search of their own would draw."""
    jid = _demo_network(db)
    places = _demo_points(30, seed=9)
    rng = random.Random(4)
    paths = [rng.sample(places, rng.randint(2, 8)) for _ in range(6)]
    with db.session() as session:
        roads._TREES.clear()
        searched = roads.route_lines(session, jurisdiction_id=jid, paths=paths)
        RoadNetworkMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0).matrix(places)

        def no_search(*args: object, **kwargs: object) -> None:
            raise AssertionError("the network was searched again")

        monkeypatch.setattr(roads, "dijkstra", no_search)
        walked = roads.route_lines(session, jurisdiction_id=jid, paths=paths)
    for line, own in zip(walked, searched, strict=True):
        assert shapely.LineString(line).hausdorff_distance(shapely.LineString(own)) < 1e-9
        assert _length_m(line) == pytest.approx(_length_m(own), abs=0.01)


def test_without_a_network_the_straight_line_is_used(db: Database) -> None:
    jid = _jid(db)
    with db.session() as session:
        provider = provider_for(
            session, jurisdiction_id=jid, routing=RoutingSettings(speed_kmh=20, detour_factor=1.4)
        )
        assert provider.name == "straight_line"
        with pytest.raises(NoRoadNetwork, match="geo311 roads load"):
            RoadNetworkMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0)


def test_reloading_replaces_the_network(demo_db: Database) -> None:
    with demo_db.session() as session:
        jid = layers_service.get_jurisdiction(session, "demo").id  # type: ignore[union-attr]
        before = roads.get_network(session, jurisdiction_id=jid)
        assert before is not None
        assert before.edges == 1250  # the demo loader loads the street grid
        city = generate()
        lines = [line for line in demo_road_lines(city) if line.name != "Elm St"]
        summary = roads.load_network(
            session, jurisdiction_id=jid, network=build_network(lines), source="no Elm"
        )
        # Elm St's 31 blocks go, and the 30 avenues it crossed lose a junction each.
        assert summary.edges == 1250 - 31 - 30
        main = 6 * 20 + 4 * 31  # the main avenues now run 20 blocks; Elm was no main street
        assert roads.highway_counts(session, jurisdiction_id=jid) == {
            "residential": summary.edges - main,
            "secondary": main,
        }


@pytest.mark.shared_data
def test_monaco_network(db: Database, shared_data: Path) -> None:
    jid = _jid(db, "monaco")
    lines = lines_from_osm(str(shared_data / "roads" / "monaco.osm.pbf"))
    network = build_network(lines)
    with db.session() as session:
        summary = roads.load_network(
            session, jurisdiction_id=jid, network=network, source="monaco.osm.pbf"
        )
    assert summary.edges > 2000
    # One-way streets and dead-end car parks: the strongly connected core is most, not all.
    assert 0.7 * summary.edges < summary.routable_edges < summary.edges
    # Points across the principality: Fontvieille, Monte-Carlo casino, Larvotto, the port,
    # Monaco-Ville, La Condamine market.
    places = [
        (7.4160, 43.7315),
        (7.4282, 43.7394),
        (7.4352, 43.7451),
        (7.4226, 43.7357),
        (7.4230, 43.7305),
        (7.4205, 43.7367),
    ]
    rng = random.Random(3)
    points = places + [(rng.uniform(7.412, 7.436), rng.uniform(43.727, 43.748)) for _ in range(44)]
    with db.session() as session:
        m = RoadNetworkMatrix(
            session, jurisdiction_id=jid, access_speed_kmh=25.0, with_distances=True
        ).matrix(points)
    bee = StraightLine(speed_kmh=max(summary.max_speed_kmh, 25.0)).matrix(points)
    assert (m.durations_s >= bee.durations_s - 1).all()
    assert m.distances_m is not None
    assert (m.distances_m >= bee.distances_m - 1).all()  # type: ignore[operator]
    # Fontvieille to Larvotto, about 3.3 km as the crow flies: a few minutes by road.
    assert 240 < m.durations_s[0, 2] < 900
    # One-way streets make some trips longer one way than the other.
    asym = np.abs(m.durations_s - m.durations_s.T)
    assert asym.max() > 30
    # A tour of the six places: the drawn line is continuous road, no shorter than the
    # shortest road distances between them.
    with db.session() as session:
        line = route_line(session, jurisdiction_id=jid, points=places)
    shortest = sum(int(m.distances_m[k, k + 1]) for k in range(len(places) - 1))
    assert shortest - 5 <= _length_m(line) <= 2 * shortest
    steps = [GEOD.inv(*p, *q)[2] for p, q in itertools.pairwise(line)]
    assert max(steps) < 400  # no straight jumps across town


@pytest.mark.shared_data
def test_in_process_times_are_pgroutings_on_monaco(db: Database, shared_data: Path) -> None:
    """The in-process search gives the times and lengths pgRouting's matrix gives, pair by
    pair, on a real network with one-way streets, dead ends and several points per block."""
    jid = _jid(db, "monaco")
    lines = lines_from_osm(str(shared_data / "roads" / "monaco.osm.pbf"))
    with db.session() as session:
        roads.load_network(
            session, jurisdiction_id=jid, network=build_network(lines), source="monaco.osm.pbf"
        )
    rng = random.Random(11)
    points = [(rng.uniform(7.409, 7.439), rng.uniform(43.725, 43.752)) for _ in range(150)]
    # Pairs a few metres apart: spots on one edge, in both orders along it.
    points += [(x + rng.uniform(-2e-4, 2e-4), y + rng.uniform(-2e-4, 2e-4)) for x, y in points[:50]]
    points += points[:5]  # the same place twice
    with db.session() as session:
        ours = RoadNetworkMatrix(
            session, jurisdiction_id=jid, access_speed_kmh=25.0, with_distances=True
        ).matrix(points)
        theirs = PgRoutingMatrix(
            session, jurisdiction_id=jid, access_speed_kmh=25.0, with_distances=True
        ).matrix(points)
        snaps = snap(session, jurisdiction_id=jid, points=points)
    assert len({s.edge_id for s in snaps}) < len(set(points))  # some blocks hold several
    assert ours.durations_s.shape == (len(points), len(points))
    # Whole seconds and metres, rounded from floats summed in another order: at most 1 apart.
    assert np.abs(ours.durations_s - theirs.durations_s).max() <= 1
    assert ours.distances_m is not None
    assert theirs.distances_m is not None
    assert np.abs(ours.distances_m - theirs.distances_m).max() <= 1
    assert np.abs(ours.durations_s - ours.durations_s.T).max() > 30  # one-way streets count


def _graph(*edges: tuple[int, int, int, float, float, float]) -> RoadGraph:
    """Return a graph of edges (id, source, target, cost, reverse cost, length)."""
    e = np.asarray(sorted(edges), dtype=np.float64)
    return RoadGraph(
        edge_id=e[:, 0].astype(np.int64),
        source=e[:, 1].astype(np.int64),
        target=e[:, 2].astype(np.int64),
        cost_s=e[:, 3],
        reverse_cost_s=e[:, 4],
        length_m=e[:, 5],
    )


def test_spots_split_their_edges_both_ways_where_the_road_allows() -> None:
    # 1 → 2 → 3 in a line; edge 10 (1-2) two-way, 100 s; edge 11 (2-3) one way 2 → 3, 50 s
    # (back from 3 to 1 by edge 12, one way, 400 s); edge 13 a zero-length link 3 ↔ 4.
    graph = _graph(
        (10, 1, 2, 100.0, 100.0, 1000.0),
        (11, 2, 3, 50.0, -1.0, 500.0),
        (12, 3, 1, 400.0, -1.0, 2000.0),
        (13, 3, 4, 0.0, 0.0, 0.0),
        (14, 4, 5, 30.0, 30.0, 300.0),
    )
    spots = [(10, 0.25), (10, 0.75), (11, 0.5), (14, 0.5)]
    costs = network_costs(graph, spots, by="time")
    # Along edge 10 between two spots on it: half of it, either way.
    assert costs[0, 1] == pytest.approx(50.0)
    assert costs[1, 0] == pytest.approx(50.0)
    # On to the one-way edge: the rest of edge 10, then half of edge 11.
    assert costs[1, 2] == pytest.approx(25.0 + 25.0)
    # Back against the one-way street is not allowed: round by edge 12, then into edge 10.
    assert costs[2, 1] == pytest.approx(25.0 + 400.0 + 75.0)
    # Over the zero-length link, which must not cut the road.
    assert costs[2, 3] == pytest.approx(25.0 + 15.0)
    assert np.diag(costs).tolist() == [0.0] * 4
    lengths = network_costs(graph, spots, by="length")
    assert lengths[1, 2] == pytest.approx(250.0 + 250.0)
    assert lengths[2, 1] == pytest.approx(250.0 + 2000.0 + 750.0)


def test_parallel_roads_take_the_faster_and_no_road_is_nan() -> None:
    graph = _graph(
        (1, 1, 2, 90.0, 90.0, 900.0),
        (2, 1, 2, 60.0, 60.0, 1200.0),  # the bypass: longer but faster
        (3, 2, 3, 10.0, -1.0, 100.0),  # a dead end one may drive into, not out of
        (4, 0, 1, 10.0, 10.0, 100.0),
    )
    spots = [(4, 0.5), (3, 0.5)]
    # Half of edge 4, the bypass, half of edge 3; by length, the shorter road instead.
    assert network_costs(graph, spots, by="time")[0, 1] == pytest.approx(5.0 + 60.0 + 5.0)
    assert network_costs(graph, spots, by="length")[0, 1] == pytest.approx(50 + 900 + 50)
    assert np.isnan(network_costs(graph, spots, by="time")[1, 0])
    with pytest.raises(ValueError, match="no routable edge"):
        network_costs(graph, [(9, 0.5)], by="time")


def test_a_reloaded_network_is_the_one_searched(demo_db: Database) -> None:
    # Two points along Elm St: a minute's drive along it, a detour once it is gone.
    a = to_lonlat(-2800 + 20, -1900 + 5)
    b = to_lonlat(-2800 + 400, -1900 + 5)
    with demo_db.session() as session:
        jid = layers_service.get_jurisdiction(session, "demo").id  # type: ignore[union-attr]
        before = RoadNetworkMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0)
        along = before.matrix([a, b]).durations_s[0, 1]
    with demo_db.session() as session:
        lines = [line for line in demo_road_lines(generate()) if line.name != "Elm St"]
        roads.load_network(
            session, jurisdiction_id=jid, network=build_network(lines), source="no Elm"
        )
    with demo_db.session() as session:
        after = RoadNetworkMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0)
        reference = PgRoutingMatrix(session, jurisdiction_id=jid, access_speed_kmh=25.0)
        detour = after.matrix([a, b]).durations_s
        assert np.abs(detour - reference.matrix([a, b]).durations_s).max() <= 1
    assert detour[0, 1] > along + 30
