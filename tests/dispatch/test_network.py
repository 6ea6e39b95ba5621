"""Building a routable graph from centrelines, and reading roads from an OSM file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyproj import Geod

from dispatch.network import (
    RoadLine,
    build_network,
    lines_from_osm,
    parse_maxspeed,
    parse_oneway,
)
from fixtures.demo_city import generate
from fixtures.load import demo_road_lines

GEOD = Geod(ellps="WGS84")


def test_lines_are_cut_at_junctions_only() -> None:
    # A plus sign: two lines crossing at a shared middle vertex, plus an unshared bend.
    ew = RoadLine(coords=((0.0, 0.0), (0.001, 0.0), (0.002, 0.0)), highway="residential")
    ns = RoadLine(
        coords=((0.001, -0.001), (0.0011, -0.0005), (0.001, 0.0), (0.001, 0.001)),
        highway="residential",
    )
    net = build_network([ew, ns])
    assert len(net.vertices) == 5  # four ends and the crossing; the bend is no vertex
    assert len(net.edges) == 4
    crossing = next(v for v in net.vertices if (v.lon, v.lat) == (0.001, 0.0))
    assert sum(crossing.id in (e.source, e.target) for e in net.edges) == 4
    bent = next(e for e in net.edges if len(e.coords) == 3)
    assert bent.length_m > GEOD.inv(0.001, -0.001, 0.001, 0.0)[2]


def test_costs_follow_speed_and_direction() -> None:
    line = RoadLine(coords=((0.0, 0.0), (0.01, 0.0)), highway="primary", oneway=1)
    (edge,) = build_network([line]).edges
    assert edge.length_m == pytest.approx(GEOD.inv(0.0, 0.0, 0.01, 0.0)[2])
    assert edge.cost_s == pytest.approx(edge.length_m / (40 / 3.6))
    assert edge.reverse_cost_s < 0  # one-way: closed against the line
    slow = RoadLine(coords=line.coords, highway="primary", maxspeed_kmh=20.0, oneway=-1)
    (edge,) = build_network([slow], speeds_kmh={"primary": 50.0}).edges
    assert edge.cost_s < 0
    assert edge.reverse_cost_s == pytest.approx(edge.length_m / (20 / 3.6))


def test_osm_tags() -> None:
    assert parse_maxspeed("50") == 50.0
    assert parse_maxspeed("30 mph") == pytest.approx(48.28, abs=0.01)
    assert parse_maxspeed("walk") is None
    assert parse_oneway({"oneway": "yes"}) == 1
    assert parse_oneway({"oneway": "-1"}) == -1
    assert parse_oneway({"junction": "roundabout"}) == 1
    assert parse_oneway({"highway": "residential"}) == 0


def test_the_demo_grid_is_one_connected_graph() -> None:
    city = generate()
    net = build_network(demo_road_lines(city))
    # 30 avenues × 20 streets cross at 600 junctions; every street also has two ends.
    assert len(net.vertices) == 30 * 20 + 2 * 30 + 2 * 20
    assert len(net.edges) == 30 * 21 + 20 * 31
    assert net.max_speed_kmh == pytest.approx(35.0)


OSM_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
  <node id="1" lat="43.7300" lon="7.4200" version="1"/>
  <node id="2" lat="43.7300" lon="7.4210" version="1"/>
  <node id="3" lat="43.7300" lon="7.4220" version="1"/>
  <node id="4" lat="43.7310" lon="7.4210" version="1"/>
  <node id="5" lat="43.7290" lon="7.4210" version="1"/>
  <way id="10" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="name" v="Rue Basse"/>
  </way>
  <way id="11" version="1">
    <nd ref="4"/><nd ref="2"/>
    <tag k="highway" v="primary"/><tag k="oneway" v="yes"/><tag k="maxspeed" v="30"/>
  </way>
  <way id="12" version="1">
    <nd ref="2"/><nd ref="5"/>
    <tag k="highway" v="footway"/>
  </way>
  <way id="13" version="1">
    <nd ref="3"/><nd ref="5"/>
    <tag k="highway" v="service"/><tag k="access" v="private"/>
  </way>
</osm>
"""


def write_osm(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.osm"
    path.write_text(OSM_XML)
    return path


def test_drivable_roads_are_read_from_an_osm_file(tmp_path: Path) -> None:
    lines = lines_from_osm(str(write_osm(tmp_path)))
    assert sorted(line.way_id or 0 for line in lines) == [10, 11]  # no footway, no private road
    primary = next(line for line in lines if line.way_id == 11)
    assert primary.oneway == 1
    assert primary.maxspeed_kmh == 30.0
    assert primary.nodes == (4, 2)
    net = build_network(lines)
    assert len(net.edges) == 3  # way 10 is cut where way 11 joins it
    assert {v.osm_node_id for v in net.vertices} == {1, 2, 3, 4}
