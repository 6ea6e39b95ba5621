"""Dedup scoring and the lock grid: pure logic, no database."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from pyproj import Geod

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid
from geo311.resident.dedup.scoring import (
    Candidate,
    NewReport,
    Rule,
    decide,
    hamming,
    is_live,
    normalise_address,
    rule_for,
    score,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = DedupSettings()


def _rule(**overrides: object) -> Rule:
    return rule_for(SETTINGS, radius_m=50.0, **overrides)  # type: ignore[arg-type]


def _cand(**kw: object) -> Candidate:
    base: dict[str, object] = {
        "incident_id": 1,
        "category_code": "pothole",
        "status": "new",
        "distance_m": 10.0,
        "last_report_at": NOW - timedelta(minutes=5),
    }
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]


def _new(**kw: object) -> NewReport:
    base: dict[str, object] = {"category_code": "pothole", "at": NOW}
    base.update(kw)
    return NewReport(**base)  # type: ignore[arg-type]


def test_distance_alone_matches_within_the_radius_and_nearer_scores_higher() -> None:
    rule = _rule()
    near = score(_new(), _cand(distance_m=2.0), rule, NOW)
    far = score(_new(), _cand(distance_m=45.0), rule, NOW)
    assert near.score > far.score
    assert "within_radius" in near.fired
    assert "closeness" in near.fired
    assert decide(_new(), [_cand(distance_m=45.0)], rule, NOW).kind == "matched"


def test_exactly_at_the_radius_is_inside_and_beyond_it_is_not() -> None:
    rule = _rule()
    at_edge = decide(_new(), [_cand(distance_m=50.0)], rule, NOW)
    assert at_edge.kind == "matched"
    assert "within_radius" in at_edge.best.fired  # type: ignore[union-attr]
    beyond = decide(_new(), [_cand(distance_m=50.01)], rule, NOW)
    assert beyond.kind == "new"


def test_the_same_asset_matches_whatever_the_distance() -> None:
    rule = _rule()
    same = decide(_new(asset_id=4411), [_cand(distance_m=300.0, asset_id=4411)], rule, NOW)
    assert same.kind == "matched"
    assert same.best is not None
    assert same.best.fired["same_asset"] == SETTINGS.weights.same_asset
    assert same.best.signals["same_asset"] is True


def test_two_different_assets_side_by_side_are_two_problems() -> None:
    rule = _rule()
    other = decide(_new(asset_id=4412), [_cand(distance_m=3.0, asset_id=4411)], rule, NOW)
    assert other.kind == "new"
    assert other.best is not None
    assert "other_asset" in other.best.fired


def test_a_near_identical_photo_rescues_an_old_edge_candidate_and_a_different_one_sinks_it() -> (
    None
):
    rule = _rule()
    old_edge = {"distance_m": 48.0, "last_report_at": NOW - timedelta(days=10)}
    photo = "ffd8a0c3b1e2f400"
    plain = decide(_new(), [_cand(**old_edge)], rule, NOW)
    assert plain.kind == "new"
    similar = decide(
        _new(photo_hash=photo), [_cand(**old_edge, photo_hashes=("ffd8a0c3b1e2f401",))], rule, NOW
    )
    assert similar.kind == "matched"
    assert similar.best is not None
    assert similar.best.signals["photo_bits"] == 1
    assert "photo_similar" in similar.best.fired
    different = score(_new(photo_hash=photo), _cand(photo_hashes=("002f5f3c4e1d0bff",)), rule, NOW)
    assert "photo_different" in different.fired
    assert different.score < score(_new(), _cand(), rule, NOW).score


def test_the_same_address_adds_and_another_address_takes_away() -> None:
    rule = _rule()
    same = score(
        _new(address=normalise_address("142-30 Sanford Avenue, Apt 4B")),
        _cand(distance_m=40.0, addresses=(normalise_address("142-30 SANFORD AVE") or "",)),
        rule,
        NOW,
    )
    assert same.signals["same_address"] is True
    assert "same_address" in same.fired
    other = score(
        _new(address="12 ELM ST"), _cand(distance_m=40.0, addresses=("14 ELM ST",)), rule, NOW
    )
    assert other.signals["same_address"] is False
    assert decide(
        _new(address="12 ELM ST"), [_cand(distance_m=40.0, addresses=("14 ELM ST",))], rule, NOW
    ).kind == ("new")
    assert decide(
        _new(address="12 ELM ST"), [_cand(distance_m=40.0, addresses=("12 ELM ST",))], rule, NOW
    ).kind == ("matched")


def test_age_weighs_against_a_quiet_incident() -> None:
    rule = _rule()
    fresh = score(_new(), _cand(distance_m=30.0), rule, NOW)
    old = score(_new(), _cand(distance_m=30.0, last_report_at=NOW - timedelta(days=30)), rule, NOW)
    assert old.score < fresh.score
    assert old.fired["age"] < fresh.fired.get("age", 0.0)
    assert old.signals["age_h"] == pytest.approx(720.0)


def test_another_category_of_the_group_needs_to_be_closer() -> None:
    rule = _rule()
    assert decide(_new(), [_cand(category_code="sidewalk", distance_m=10.0)], rule, NOW).kind == (
        "matched"
    )
    far = decide(_new(), [_cand(category_code="sidewalk", distance_m=35.0)], rule, NOW)
    assert far.kind == "new"
    assert far.best is not None
    assert "other_category" in far.best.fired


def test_a_closed_incident_is_reopened_inside_the_window_and_ignored_after() -> None:
    rule = _rule(reopen_window_h=72.0)
    recent = _cand(status="closed", closed_at=NOW - timedelta(hours=5), distance_m=5.0)
    assert decide(_new(), [recent], rule, NOW).kind == "reopened"
    stale = _cand(status="closed", closed_at=NOW - timedelta(hours=73), distance_m=5.0)
    assert not is_live(stale, rule, NOW)
    assert decide(_new(), [stale], rule, NOW).kind == "new"


def test_cancelled_and_long_quiet_open_incidents_are_never_matched() -> None:
    rule = _rule(open_window_h=24.0)
    assert decide(_new(), [_cand(status="cancelled", distance_m=1.0)], rule, NOW).kind == "new"
    quiet = _cand(distance_m=1.0, last_report_at=NOW - timedelta(hours=25))
    assert decide(_new(), [quiet], rule, NOW).kind == "new"


def test_the_best_candidate_wins_and_an_open_one_beats_a_closed_tie() -> None:
    rule = _rule()
    a = _cand(incident_id=1, distance_m=20.0)
    b = _cand(incident_id=2, distance_m=5.0)
    assert decide(_new(), [a, b], rule, NOW).incident_id == 2
    open_one = _cand(incident_id=3, distance_m=5.0, last_report_at=NOW)
    closed_one = _cand(incident_id=4, distance_m=5.0, status="closed", closed_at=NOW)
    assert decide(_new(), [closed_one, open_one], rule, NOW).incident_id == 3


def test_switched_off_never_matches() -> None:
    rule = _rule(enabled=False)
    decision = decide(_new(), [_cand(distance_m=0.0)], rule, NOW)
    assert decision.kind == "off"
    assert decision.incident_id is None


def test_category_overrides_take_precedence_and_unknown_weights_are_refused() -> None:
    rule = rule_for(SETTINGS, radius_m=25.0, threshold=2.0, weights={"same_asset": 5.0})
    assert rule.threshold == 2.0
    assert rule.weights.same_asset == 5.0
    assert rule.weights.closeness == SETTINGS.weights.closeness
    assert decide(_new(), [_cand(distance_m=1.0)], rule, NOW).kind == "new"
    with pytest.raises(ValidationError):
        rule_for(SETTINGS, radius_m=25.0, weights={"colour": 1.0})


def test_decision_json_names_the_fired_signals() -> None:
    decision = decide(_new(asset_id=7), [_cand(asset_id=7, distance_m=12.5)], _rule(), NOW)
    data = decision.as_json()
    assert data["decision"] == "matched"
    assert data["best"]["incident_id"] == 1
    assert set(data["best"]["fired"]) >= {"within_radius", "closeness", "same_asset"}
    assert data["best"]["distance_m"] == 12.5


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("51 Quincy Street", "51 QUINCY ST"),
        ("142-30 SANFORD AVENUE Apt 3", "142-30 Sanford Ave"),
        ("10 East 198th Street", "10 E 198 ST"),
        ("Intersection of Elm St & Oak Ave", "OAK AVENUE and ELM STREET"),
        ("22 Wolcott St  Dorchester  MA  02121", "22 WOLCOTT STREET DORCHESTER MA"),
    ],
)
def test_addresses_that_name_the_same_place_normalise_the_same(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


def test_addresses_of_different_places_stay_different() -> None:
    assert normalise_address("51 Quincy Street") != normalise_address("53 Quincy Street")
    assert normalise_address("142-30 Sanford Ave") != normalise_address("142-32 Sanford Ave")
    assert normalise_address("  ") is None


def test_hamming_counts_differing_bits() -> None:
    assert hamming("ff00", "ff00") == 0
    assert hamming("ff00", "fe01") == 2


def test_local_distance_agrees_with_the_geodesic() -> None:
    geod = Geod(ellps="WGS84")
    rng = random.Random(3)
    for lat in (0.0, 40.7, 42.3, 60.0, -33.9):
        for _ in range(20):
            lon = rng.uniform(-180, 180)
            az = rng.uniform(0, 360)
            dist = rng.uniform(0.5, 500.0)
            lon2, lat2, _ = geod.fwd(lon, lat, az, dist)
            assert grid.distance_m(lon, lat, lon2, lat2) == pytest.approx(dist, abs=0.005)


def test_any_two_points_that_could_match_share_a_lock_key() -> None:
    geod = Geod(ellps="WGS84")
    rng = random.Random(11)
    for _ in range(3000):
        lat = rng.uniform(-70, 70)
        lon = rng.uniform(-179, 179)
        radius_a = rng.choice([10.0, 25.0, 50.0, 150.0])
        radius_b = rng.choice([10.0, 25.0, 50.0, 150.0])
        # Within the larger radius: whichever comes second could match the first.
        lon2, lat2, _ = geod.fwd(
            lon, lat, rng.uniform(0, 360), rng.uniform(0, max(radius_a, radius_b))
        )
        kw = {"jurisdiction_id": 1, "group_code": "streets", "cell_m": 100.0}
        a = grid.lock_keys(lon=lon, lat=lat, radius_m=radius_a, **kw)  # type: ignore[arg-type]
        b = grid.lock_keys(lon=lon2, lat=lat2, radius_m=radius_b, **kw)  # type: ignore[arg-type]
        assert set(a) & set(b), (lon, lat, lon2, lat2, radius_a, radius_b)
        assert a == sorted(a)
        # The grid is in degrees: towards the poles a disk spans more cells east-west.
        east_west = math.ceil(2 * radius_a / (100.0 * math.cos(math.radians(abs(lat) + 1))))
        assert len(a) <= (east_west + 2) * (math.ceil(2 * radius_a / 100.0) + 2)


def test_far_apart_points_and_other_groups_do_not_share_locks() -> None:
    kw = {"jurisdiction_id": 1, "radius_m": 50.0, "cell_m": 250.0}
    a = grid.lock_keys(group_code="streets", lon=-73.95, lat=40.7, **kw)  # type: ignore[arg-type]
    b = grid.lock_keys(group_code="streets", lon=-73.90, lat=40.7, **kw)  # type: ignore[arg-type]
    c = grid.lock_keys(group_code="water", lon=-73.95, lat=40.7, **kw)  # type: ignore[arg-type]
    assert not set(a) & set(b)
    assert not set(a) & set(c)
    with_asset = grid.lock_keys(
        group_code="lighting",
        lon=-73.95,
        lat=40.7,
        asset_id=4411,
        **kw,  # type: ignore[arg-type]
    )
    far_same_asset = grid.lock_keys(
        group_code="lighting",
        lon=-73.90,
        lat=40.7,
        asset_id=4411,
        **kw,  # type: ignore[arg-type]
    )
    assert set(with_asset) & set(far_same_asset)
