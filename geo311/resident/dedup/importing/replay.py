"""Step 3 of an import, **dedup**: the placed rows replayed in time order against the incidents
live at each row's time (see ``geo311.resident.dedup.importer``), in memory, no I/O but the
ids drawn from the tables' sequences."""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid
from geo311.resident.dedup.importing.mapping import ImportSummary, OutsideRule
from geo311.resident.dedup.importing.write import (
    DUE_AT,
    OPENED_AT,
    Batch,
    encode_json,
    ewkb_point,
    jsonb,
)
from geo311.resident.dedup.placing import rule_of
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
    Candidate,
    Decision,
    NewReport,
    PairScorer,
    Rule,
    decide,
    fired_text,
    normalise_address,
    normalise_addresses,
)
from geo311.resident.intake.tracking import new_tracking_ids
from work_orders.models import ServiceCategory
from work_orders.opening import Terms, due_at_many

_CLOSED = "closed"


# --- 2. dedup ------------------------------------------------------------------------------------


class Live:
    """An incident that later rows may still match."""

    __slots__ = (
        "addresses",
        "asset_id",
        "category",
        "closed_at",
        "descriptions",
        "expires",
        "group",
        "id",
        "last_t",
        "lat",
        "lon",
        "norm",
        "opened_at",
        "reports",
        "status",
        "token",
    )

    def __init__(
        self,
        *,
        id: int,
        category: str,
        group: str,
        lon: float,
        lat: float,
        asset_id: int | None,
        opened_at: datetime,
        last_t: datetime,
        closed_at: datetime | None,
        status: str,
    ) -> None:
        self.id = id
        self.category = category
        self.group = group
        self.lon = lon
        self.lat = lat
        self.asset_id = asset_id
        self.opened_at = opened_at
        self.last_t = last_t
        self.closed_at = closed_at
        self.status = status
        self.reports: list[tuple[int, float, float, str | None]] = []
        self.addresses: list[str] = []
        self.descriptions: list[str] = []  # kept only for categories with a fitted model
        self.norm: tuple[str, ...] | None = ()
        self.expires = last_t
        self.token = -1

    def normalised(self) -> tuple[str, ...]:
        if self.norm is None:
            self.norm = normalise_addresses(self.addresses)
        return self.norm

    def add_address(self, address: str | None) -> None:
        if address:
            self.addresses.append(address)
            self.norm = None


_CELL_ROW = 1 << 32
# A cell's width in radii: a little over two, so a search (a radius and a thousandth each side)
# never spans more than two cells a side.
_CELL_RADII = 2.01


def _matchable(
    inc: Live,
    at: datetime,
    enabled: frozenset[str],
    open_window: timedelta,
    reopen_window: timedelta,
) -> bool:
    """Return True when a row at ``at`` may join ``inc`` (scoring.is_live's rule)."""
    if inc.category not in enabled or inc.opened_at > at:
        return False
    if inc.status in UNMATCHABLE_STATUSES:
        return False
    closed_at = inc.closed_at
    if closed_at is not None and closed_at <= at:
        return at - closed_at <= reopen_window
    return at - inc.last_t <= open_window


class Replay:
    """The dedup state while rows are replayed in time order."""

    def __init__(
        self,
        *,
        jurisdiction_id: int,
        categories: dict[str, ServiceCategory],
        settings: DedupSettings,
        summary: ImportSummary,
        models: Mapping[str, PairScorer] | None = None,
        terms: dict[str, Terms] | None = None,
        outside_rule: OutsideRule = "skip",
        outside_within_m: float = 0.0,
    ) -> None:
        self.jid = jurisdiction_id
        self.outside_rule = outside_rule
        self.outside_within_m = outside_within_m
        self.summary = summary
        self.categories = categories
        self.rules: dict[str, Rule] = {
            c: rule_of(cat, settings, (models or {}).get(c)) for c, cat in categories.items()
        }
        self.group_of = {c: cat.group_code for c, cat in categories.items()}
        # How incidents open (the SLA in the category's calendar): the rows intake builds.
        self.terms: dict[str, Terms] = terms or {
            c: Terms.of(cat, None) for c, cat in categories.items()
        }
        self.enabled_in_group: dict[str, frozenset[str]] = {}
        for code, rule in self.rules.items():
            if rule.enabled:
                group = self.group_of[code]
                self.enabled_in_group[group] = self.enabled_in_group.get(group, frozenset()) | {
                    code
                }
        live_rules = [r for r in self.rules.values() if r.enabled] or list(self.rules.values())
        self.max_radius_m = max([1.0, *(r.radius_m for r in live_rules)])
        self.keep = timedelta(
            hours=max([0.0, *(max(r.open_window_h, r.reopen_window_h) for r in live_rules)])
        )
        # How long after its last report an open incident, and after its closing a closed one,
        # can still be matched (the longest window of any category: a row of another category
        # of the group may have a longer one).
        self.keep_open = timedelta(hours=max([0.0, *(r.open_window_h for r in live_rules)]))
        self.keep_closed = timedelta(hours=max([0.0, *(r.reopen_window_h for r in live_rules)]))
        # Cells two radii wide: a search (one radius each side) then meets at most two cells
        # a side, most often one or two in all. Live incidents are sparse (a few per hectare
        # at a large city's rate), so fewer look-ups pay more than smaller cells.
        self.cell_lat = _CELL_RADII * self.max_radius_m / 110_574.0
        self.cell_lon = self.cell_lat  # set per jurisdiction in start()
        # group → cell key (see _key) → the live incidents in the cell.
        self.cells: dict[str, dict[int, list[Live]]] = {}
        self.by_asset: dict[tuple[str, int], list[Live]] = {}
        # (when it expires, in seconds since the epoch; token; incident): float keys compare
        # several times faster than aware datetimes in the heap's sifts.
        self.heap: list[tuple[float, int, Live]] = []
        self.tokens = itertools.count()
        self.changed: dict[int, Live] = {}
        self.scales: dict[float, tuple[float, float]] = {}
        self.windows = {
            code: (timedelta(hours=r.open_window_h), timedelta(hours=r.reopen_window_h))
            for code, r in self.rules.items()
        }
        self.outside = 0
        # Rows no other row of the file can meet (importing.lone), by seq: 1 for a lone row.
        # Empty: every row goes through the candidate search.
        self.lone = bytearray()
        self.lone_rows = 0
        # How many stored incidents were live when the file starts (load_existing).
        self.stored_live = 0
        # How far apart, in metres, a row and the report that keeps an incident it may join
        # matchable can be (importing.lone): the largest radius, plus the larger of the
        # largest radius and twice the largest snap radius (two reports on one asset).
        snaps = [
            float(cat.snap_radius_m)
            for c, cat in categories.items()
            if self.rules[c].enabled and cat.asset_type is not None and cat.snap_radius_m > 0
        ]
        self.reach_m = self.max_radius_m + max([self.max_radius_m, *(2.0 * s for s in snaps)])
        # The closing times that reopened incidents lost (their days' figures change too).
        self.unclosed: list[datetime] = []
        # What is stored for a report that had no candidate at all (most of them).
        self.no_candidate_json = {
            code: jsonb(
                json.dumps(
                    Decision(kind="new", threshold=rule.threshold, radius_m=rule.radius_m).as_json()
                )
            )
            for code, rule in self.rules.items()
        }

    def start(self, max_abs_lat: float) -> None:
        """Size the grid so a cell is at least the largest radius wide everywhere."""
        kx, _ = grid.metres_per_degree(min(89.0, max_abs_lat))
        self.cell_lon = _CELL_RADII * self.max_radius_m / kx

    def _key(self, lon: float, lat: float) -> int:
        # One int per cell (an int hashes faster than a tuple): |row| stays far below 2**31.
        return math.floor(lon / self.cell_lon) * _CELL_ROW + math.floor(lat / self.cell_lat)

    def add_live(self, inc: Live) -> None:
        self.cells.setdefault(inc.group, {}).setdefault(self._key(inc.lon, inc.lat), []).append(inc)
        if inc.asset_id is not None:
            self.by_asset.setdefault((inc.group, inc.asset_id), []).append(inc)
        self.reschedule(inc)

    def lone_groups(self) -> tuple[list[str], list[int]]:
        """Return the category codes and, for each (by position, from 1), its group's
        number for importing.lone: 0 for a category whose dedup is off (never lone)."""
        codes = list(self.rules)
        numbers: dict[str, int] = {}
        groups = [0]
        for code in codes:
            if self.rules[code].enabled:
                groups.append(numbers.setdefault(self.group_of[code], len(numbers) + 1))
            else:
                groups.append(0)
        return codes, groups

    def reschedule(self, inc: Live) -> None:
        """(Re)compute when the incident stops being matchable, from its last report and
        closing.

        An incident the source closes (now or later) is matchable until the reopen window
        after its closing ends: most histories close most incidents within days, so the live
        set is weeks of incidents, not the open window's months. One never closed stays until
        the open window after its last report ends.
        """
        if inc.closed_at is not None:
            inc.expires = inc.closed_at + self.keep_closed
        else:
            inc.expires = inc.last_t + self.keep_open
        inc.token = next(self.tokens)
        heapq.heappush(self.heap, (inc.expires.timestamp(), inc.token, inc))

    def stale_before(self, now: datetime) -> bool:
        """Return True when some incident is due to be forgotten at ``now``."""
        # A second's slack: a float time can round a microsecond either way, and an incident
        # kept a second longer is still judged exactly (in datetimes) by candidates().
        heap = self.heap
        return bool(heap) and heap[0][0] < now.timestamp() - 1.0

    def evict(self, now: datetime) -> None:
        """Forget incidents no row at ``now`` or later can match (with :meth:`stale_before`'s
        slack)."""
        heap = self.heap
        now_s = now.timestamp() - 1.0
        while heap and heap[0][0] < now_s:
            _, token, inc = heapq.heappop(heap)
            if inc.token != token:
                continue  # rescheduled since; a newer entry stands for it
            cells = self.cells[inc.group]
            key = self._key(inc.lon, inc.lat)
            bucket = cells.get(key)
            if bucket is not None:
                bucket.remove(inc)
                if not bucket:
                    del cells[key]
            if inc.asset_id is not None:
                asset = (inc.group, inc.asset_id)
                owners = self.by_asset.get(asset)
                if owners is not None:
                    owners.remove(inc)
                    if not owners:
                        del self.by_asset[asset]

    def scale(self, lat: float) -> tuple[float, float]:
        """Return metres per degree (lon, lat) near ``lat``: computed once per 0.001° band
        (~110 m), within a millimetre over the tens of metres compared."""
        band = round(lat, 3)
        scale = self.scales.get(band)
        if scale is None:
            scale = self.scales[band] = grid.metres_per_degree(band)
        return scale

    def candidates(
        self,
        code: str,
        lon: float,
        lat: float,
        asset_id: int | None,
        at: datetime,
        rule: Rule,
        scale: tuple[float, float],
    ) -> list[tuple[Live, float]]:
        """Return the incidents of the group, matchable at ``at`` (scoring.is_live's rule),
        within the radius (inclusive) or on the same asset, with their distance in metres."""
        group = self.group_of[code]
        radius = rule.radius_m
        kx, ky = scale
        pad_lon, pad_lat = radius / kx * 1.001, radius / ky * 1.001
        cell_lon, cell_lat = self.cell_lon, self.cell_lat
        x0, x1 = math.floor((lon - pad_lon) / cell_lon), math.floor((lon + pad_lon) / cell_lon)
        y0, y1 = math.floor((lat - pad_lat) / cell_lat), math.floor((lat + pad_lat) / cell_lat)
        near: list[Live] = []
        cells = self.cells.get(group)
        if cells:
            get = cells.get
            for row in range(x0 * _CELL_ROW, (x1 + 1) * _CELL_ROW, _CELL_ROW):
                for key in range(row + y0, row + y1 + 1):
                    bucket = get(key)
                    if bucket:
                        near += bucket
        if not near and (asset_id is None or (group, asset_id) not in self.by_asset):
            return []  # nothing near: most rows, and nothing else to do for them
        enabled = self.enabled_in_group.get(group, frozenset())
        open_window, reopen_window = self.windows[code]
        seen: dict[int, tuple[Live, float]] = {}
        for inc in near:
            d = math.hypot((inc.lon - lon) * kx, (inc.lat - lat) * ky)
            if d <= radius and _matchable(inc, at, enabled, open_window, reopen_window):
                seen[inc.id] = (inc, d)
        if asset_id is not None:
            for inc in self.by_asset.get((group, asset_id), ()):
                if inc.id not in seen and _matchable(inc, at, enabled, open_window, reopen_window):
                    seen[inc.id] = (inc, grid.distance_m(lon, lat, inc.lon, inc.lat))
        return list(seen.values())

    def decide(
        self,
        code: str,
        at: datetime,
        lon: float,
        lat: float,
        asset_id: int | None,
        address: str | None,
        scale: tuple[float, float],
        description: str | None = None,
    ) -> tuple[Decision | None, Live | None]:
        """Return the decision and the incident to join (None: open a new one). The decision
        is None when there was no matchable candidate at all."""
        rule = self.rules[code]
        if not rule.enabled:
            return Decision(kind="off", threshold=rule.threshold, radius_m=rule.radius_m), None
        found = self.candidates(code, lon, lat, asset_id, at, rule, scale)
        if not found:
            return None, None
        by_id = {inc.id: inc for inc, _ in found}
        candidates = [
            Candidate(
                incident_id=inc.id,
                category_code=inc.category,
                status=_CLOSED
                if inc.closed_at is not None and inc.closed_at <= at
                else ("new" if inc.status == _CLOSED else inc.status),
                distance_m=d,
                last_report_at=inc.last_t,
                closed_at=inc.closed_at,
                asset_id=inc.asset_id,
                addresses=inc.normalised() if address else (),
                descriptions=tuple(inc.descriptions) if description else (),
            )
            for inc, d in found
        ]
        new = NewReport(
            category_code=code,
            at=at,
            asset_id=asset_id,
            address=normalise_address(address),
            description=description if rule.model is not None else None,
        )
        decision = decide(new, candidates, rule, at)
        target = by_id.get(decision.incident_id) if decision.incident_id is not None else None
        return decision, target


OUTSIDE = "outside the jurisdiction"


def replay_batch(
    ids: psycopg.Connection[Any], replay: Replay, rows: list[tuple[Any, ...]]
) -> tuple[Batch, list[tuple[Any, ...]]]:
    """Decide a batch of rows (in time order); return what to write and the report lines."""
    jid = replay.jid
    summary = replay.summary
    n = len(rows)
    # Ids from the tables' own sequences, reserved for the batch (a rolled-back import only
    # leaves a gap).
    report_ids = iter(_next_ids(ids, "reports", n))
    incident_ids = iter(_next_ids(ids, "incidents", n))
    tracking = iter(new_tracking_ids(n))
    batch = Batch()
    lines: list[tuple[Any, ...]] = []
    heap = replay.heap
    terms = replay.terms
    group_of = replay.group_of
    outside_rule = replay.outside_rule
    lone = replay.lone
    has_lone = bool(lone)
    # With no stored incident live, a lone row has no candidate at all.
    search_lone = replay.stored_live > 0
    # The incidents opened in this batch, by category: their due times are counted together.
    opened_by_code: dict[str, list[int]] = {}
    for row in rows:
        (
            seq,
            ext_id,
            at,
            code,
            lon,
            lat,
            address,
            description,
            closed_at,
            ward_id,
            asset_id,
            near,
        ) = row
        if ward_id is None:
            near_ward_id = near
            if near_ward_id is None:
                replay.outside += 1
                lines.append((seq, None, None, None, None, None, OUTSIDE, None))
                continue
            if outside_rule == "nearest-ward":
                ward_id = near_ward_id
                summary.nearest_ward += 1
            else:
                summary.kept_outside += 1
        if heap and heap[0][0] < at.timestamp() - 1.0:  # replay.stale_before(at), inline
            replay.evict(at)
        scale = replay.scale(lat)
        rule = replay.rules[code]
        with_model = rule.model is not None
        is_lone = has_lone and lone[seq] == 1 and rule.enabled
        if is_lone and not search_lone:
            decision, target = None, None
        else:
            decision, target = replay.decide(
                code, at, lon, lat, asset_id, address, scale, description if with_model else None
            )
        report_id = next(report_ids)
        point = ewkb_point(lon, lat)
        matched_report: int | None = None
        matched_ext: str | None = None
        inc: Live | None
        if target is None:
            incident_id = next(incident_ids)
            status = _CLOSED if closed_at is not None else "new"
            opening = opened_by_code.get(code)
            if opening is None:
                opening = opened_by_code[code] = []
            opening.append(len(batch.incidents))
            batch.incidents.append(
                [
                    jid,
                    incident_id,
                    code,
                    status,
                    point,
                    ward_id,
                    asset_id,
                    at,
                    None,  # due_at, set below for the batch at once
                    closed_at,
                    closed_at or at,
                ]
            )
            summary.incidents_opened += 1
            if decision is not None and decision.kind == "off":
                summary.off += 1
            if is_lone:
                # No later row can join its incident: it stays out of the live set.
                replay.lone_rows += 1
                inc = None
            else:
                inc = Live(
                    id=incident_id,
                    category=code,
                    group=group_of[code],
                    lon=lon,
                    lat=lat,
                    asset_id=asset_id,
                    opened_at=at,
                    last_t=at,
                    closed_at=closed_at,
                    status=status,
                )
                replay.add_live(inc)
        else:
            inc = target
            incident_id = inc.id
            assert decision is not None
            reports = inc.reports
            if len(reports) == 1:
                nearest = reports[0]
            else:
                kx, ky = scale
                nearest = min(
                    reports, key=lambda r: (math.hypot((r[1] - lon) * kx, (r[2] - lat) * ky), r[0])
                )
            matched_report, matched_ext = nearest[0], nearest[3]
            if decision.kind == "reopened":
                # The incident was closed when this report came: it is open again from now,
                # until this report's own closing (if the source closed it).
                if inc.closed_at is not None:
                    replay.unclosed.append(inc.closed_at)
                inc.closed_at = closed_at
                inc.status = _CLOSED if closed_at is not None else "reopened"
                replay.changed[inc.id] = inc
                summary.reopened += 1
            else:
                summary.matched += 1
            inc.last_t = at
            replay.reschedule(inc)
        if inc is not None:
            inc.reports.append((report_id, lon, lat, ext_id))
            if address:
                inc.add_address(address)
            if description and with_model and len(inc.descriptions) < 20:
                inc.descriptions.append(description)
        if decision is None:  # no candidate at all: the common case, kept cheap
            kind, score, signals, fired = "new", None, replay.no_candidate_json[code], ""
        else:
            best = decision.best
            kind = decision.kind
            score = None if best is None else round(best.score, 4)
            signals = jsonb(encode_json(decision.as_json()))
            fired = "" if best is None else fired_text(best.fired)
        batch.reports.append(
            (
                jid,
                report_id,
                next(tracking),
                incident_id,
                code,
                description or "",
                address,
                point,
                ward_id,
                asset_id,
                ext_id,
                at,
                kind,
                score,
                signals,
                matched_report,
                "import",
                "import",
            )
        )
        lines.append((seq, incident_id, matched_ext, kind, score, fired, None, ward_id))
    incidents = batch.incidents
    for code, positions in opened_by_code.items():
        # Due by the category's SLA in its business calendar, as at intake.
        due = due_at_many(terms[code], [incidents[k][OPENED_AT] for k in positions])
        for k, due_at in zip(positions, due, strict=True):
            incidents[k][DUE_AT] = due_at
    return batch, lines


def _next_ids(conn: psycopg.Connection[Any], table: str, n: int) -> list[int]:
    """Return ``n`` new ids from the sequence of ``table``'s id column."""
    row = conn.execute(
        "SELECT array_agg(nextval(CAST(%s AS regclass))) FROM generate_series(1, %s)",
        (_sequence_of(conn, table), n),
    ).fetchone()
    assert row is not None
    ids: list[int] = row[0]
    return ids


def _sequence_of(conn: psycopg.Connection[Any], table: str) -> str:
    # Resolved once per call of _next_ids, not once per id (that is eight times slower).
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    assert row is not None
    name: str = row[0]
    return name
