"""Between place and dedup: the staged rows that no other row of the file can meet in the
replay ("lone" rows). A lone row opens an incident of its own without the candidate search,
and its incident is never put among the live ones (no later row can join it).

Why this is sound. A row X joins an incident I only if I's first report P is within the
radius of X (or X is on I's asset) and I is matchable at X's time: open with a report R of I
in the open window before X (X.t - R.t ≤ open window), or closed, by the row Q that opened or
last reopened it, within the reopen window before X (0 ≤ X.t - Q.closed_at ≤ reopen window).
Every report of I is within the largest radius of P, or on P's asset (then within twice the
largest snap radius of P): so the witness R or Q is within ``reach`` = largest radius + the
larger of (largest radius, twice the largest snap radius) of X, and the times meet as above.
The same holds the other way for a later row joining X's own incident (X is then its only
report and the witness). A row with no such neighbour in the file either way, and not of a
category that snaps to assets, can neither join nor be joined. The windows and radii are the
largest of all categories with dedup on, so the rule errs only on the safe side.

Incidents already stored are not in the file: with any of them live, a lone row still runs the
candidate search (it may join one of them); only its own incident stays out of the live set.

Found in numpy, in metres and scaled time, each query a box that covers the disk and the time
window: a box neighbour that is not a true one only costs a row its shortcut. (scipy's k-d
tree answers the same, but loading scipy took longer than the shortcut saves on a small
file.) The box is on the safe side too: degrees become metres with
the fewest metres per degree over the rows' latitudes (distances come out shorter, never
longer), with a margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from geo311.resident.dedup import grid

# The staged rows as fixed-width binary COPY records (no NULLs: every field has its width),
# read straight into numpy. seq, time and closing (seconds since the epoch; NaN: never
# closed), the category's position in %(codes)s (1-based), lon, lat, and whether the row's
# category snaps to assets.
_ROWS_SQL = """
COPY (
    SELECT r.seq, date_part('epoch', r.t),
           coalesce(date_part('epoch', r.closed_at), CAST('NaN' AS float8)),
           coalesce(array_position(CAST(%(codes)s AS text[]), r.category), 0),
           r.lon, r.lat, r.asset_type IS NOT NULL
    FROM import_rows AS r
    WHERE r.skip IS NULL
) TO STDOUT (FORMAT binary)
"""
_RECORD = np.dtype(
    [
        ("fields", ">i2"),
        ("n_seq", ">i4"),
        ("seq", ">i8"),
        ("n_t", ">i4"),
        ("t", ">f8"),
        ("n_closed", ">i4"),
        ("closed", ">f8"),
        ("n_code", ">i4"),
        ("code", ">i4"),
        ("n_lon", ">i4"),
        ("lon", ">f8"),
        ("n_lat", ">i4"),
        ("lat", ">f8"),
        ("n_snaps", ">i4"),
        ("snaps", "u1"),
    ]
)
# Binary COPY's header: the signature, the flags, the header extension's length (0).
_HEADER_BYTES = 19
_TRAILER_BYTES = 2
# Groups side by side on the x axis, farther apart than any two points of a group.
_GROUP_SPACING_M = 1e8
# Margins: in space (a fraction and metres) and in time (seconds).
_MARGIN = 1.01
_MARGIN_M = 1.0
_MARGIN_S = 1.0
# Below this share of lone rows (estimated on a sample of the rows) none is looked for: each
# saves a few microseconds of the replay, finding them costs about one microsecond a row.
_WORTH_SHARE = 0.10
_SAMPLE = 4096
# Queries asked at once (bounds the memory the candidate pairs take).
_QUERY_CHUNK = 65_536


def read_rows(reader: psycopg.Connection[Any], codes: Sequence[str]) -> NDArray[np.void] | None:
    """Return the staged rows to be placed as fixed-width records (see ``_RECORD``)."""
    raw = bytearray()  # one buffer, read in place by numpy (75 bytes a row)
    with reader.cursor().copy(_ROWS_SQL, {"codes": list(codes)}) as copy:
        for data in copy:
            raw += data
    body = memoryview(raw)[_HEADER_BYTES : len(raw) - _TRAILER_BYTES]
    if len(raw) < _HEADER_BYTES + _TRAILER_BYTES or len(body) % _RECORD.itemsize:
        return None  # not the layout expected: no shortcut (every row is searched)
    records = np.frombuffer(body, dtype=_RECORD)
    if records.size and (records["fields"] != 7).any():
        return None
    return records


def lone_flags(
    records: NDArray[np.void],
    *,
    group_of_code: Sequence[int],
    size: int,
    reach_m: float,
    open_s: float,
    reopen_s: float,
) -> bytearray:
    """Return, indexed by seq (``size`` long), 1 for each lone row and 0 for every other.

    ``group_of_code``: the group's number for each category position (0: unknown, the row
    is never lone). ``reach_m``, ``open_s``, ``reopen_s``: see the module's docstring.
    """
    flags = bytearray(size)
    n = int(records.size)
    if n == 0:
        return flags
    seq = records["seq"].astype(np.int64)
    t = records["t"].astype(np.float64)
    closed = records["closed"].astype(np.float64)
    lon = records["lon"].astype(np.float64)
    lat = records["lat"].astype(np.float64)
    group = np.asarray(group_of_code, dtype=np.int64)[records["code"].astype(np.int64)]
    candidate = (records["snaps"] == 0) & (group > 0)
    if not candidate.any():
        return flags
    kx, _ = grid.metres_per_degree(min(89.9, float(np.abs(lat).max()) + 0.01))
    ky = 110_574.0  # the fewest metres per degree of latitude (at the equator)
    x = lon * kx + group * _GROUP_SPACING_M
    y = lat * ky
    d = reach_m * _MARGIN + _MARGIN_M

    # 1. Another report within the open window either way.
    half_open = open_s + _MARGIN_S
    near = ~candidate  # the rows that cannot be lone count as having a neighbour
    rows = np.flatnonzero(candidate)
    points = np.column_stack((x, y, t * (d / half_open)))
    if rows.size > _SAMPLE:
        # In a dense file (a large city's years) almost no row is lone: asking every row
        # would cost more than the shortcut saves. A sample tells (the share it finds is an
        # upper bound: the closings below only take rows away).
        sample = np.random.default_rng(0).choice(rows, _SAMPLE, replace=False)
        alone = 1.0 - _others_within(points, points[sample], d, None, sample).mean()
        if alone * rows.size < _WORTH_SHARE * n:
            return flags
    near[rows[_others_within(points, points[rows], d, None, rows)]] = True
    # 2. A closing within the reopen window before the row (it may reopen that incident).
    closes = ~np.isnan(closed)
    half_reopen = reopen_s / 2.0 + _MARGIN_S
    scale_r = d / half_reopen
    todo = candidate & ~near
    if closes.any() and todo.any():
        owners = np.flatnonzero(closes)
        points = np.column_stack((x[owners], y[owners], closed[owners] * scale_r))
        rows = np.flatnonzero(todo)
        found = _others_within(
            points,
            np.column_stack((x[rows], y[rows], (t[rows] - reopen_s / 2.0) * scale_r)),
            d,
            owners,
            rows,
        )
        near[rows[found]] = True
        # 3. A later report within the reopen window after the row's own closing (it may
        # reopen the row's incident).
        todo = candidate & ~near & closes
        if todo.any():
            points = np.column_stack((x, y, t * scale_r))
            rows = np.flatnonzero(todo)
            found = _others_within(
                points,
                np.column_stack((x[rows], y[rows], (closed[rows] + reopen_s / 2.0) * scale_r)),
                d,
                None,
                rows,
            )
            near[rows[found]] = True
    lone = candidate & ~near
    for s in seq[lone].tolist():
        flags[s] = 1
    return flags


def _others_within(
    points: NDArray[np.float64],
    queries: NDArray[np.float64],
    d: float,
    owners: NDArray[np.int64] | None,
    rows: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Return, per query, True when some point is within the box of half-side ``d`` around it
    (every axis) and is not the query's own row (``owners``: the row of each point; None: the
    points are the rows themselves). Where that cannot be told (cells too many to number),
    True.

    A grid of cubes of side ``d``: a box meets at most three cubes an axis, so each query
    reads the 27 cubes around its own (sorted cube numbers, searched in bulk).
    """
    found = np.zeros(len(queries), dtype=bool)
    if len(queries) == 0 or len(points) == 0:
        return found
    cells = np.floor(points / d).astype(np.int64)
    asked = np.floor(queries / d).astype(np.int64)
    low = np.minimum(cells.min(axis=0), asked.min(axis=0)) - 1
    span = np.maximum(cells.max(axis=0), asked.max(axis=0)) - low + 2
    if float(span[0]) * float(span[1]) * float(span[2]) >= 2.0**62:
        found[:] = True
        return found
    cells -= low
    asked -= low
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    order = np.argsort(keys, kind="stable")
    # Each occupied cube once: its number, where its points start in ``order``, how many.
    cubes, first_of, count_of = np.unique(keys[order], return_index=True, return_counts=True)
    owner_of = order if owners is None else owners[order]
    # The query's own cube first, where most neighbours are; a query found is not asked again.
    offsets = sorted(
        ((dx, dy, dt) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dt in (-1, 0, 1)),
        key=lambda o: abs(o[0]) + abs(o[1]) + abs(o[2]),
    )
    for start in range(0, len(queries), _QUERY_CHUNK):
        pending = np.arange(start, min(start + _QUERY_CHUNK, len(queries)))
        for dx, dy, dt in offsets:
            if len(pending) == 0:
                break
            q_cells = asked[pending]
            want = ((q_cells[:, 0] + dx) * span[1] + q_cells[:, 1] + dy) * span[2] + (
                q_cells[:, 2] + dt
            )
            slot = np.minimum(np.searchsorted(cubes, want), len(cubes) - 1)
            count = np.where(cubes[slot] == want, count_of[slot], 0)
            total = int(count.sum())
            if total == 0:
                continue
            which = np.repeat(np.arange(len(pending)), count)
            at = np.repeat(first_of[slot] - np.cumsum(count) + count, count) + np.arange(total)
            query = pending[which]
            near = np.abs(points[order[at]] - queries[query]).max(axis=1) <= d
            near &= owner_of[at] != rows[query]
            found[query[near]] = True
            pending = pending[~found[pending]]
    return found
