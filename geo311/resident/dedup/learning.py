"""Each city's own duplicate rule, learnt from its own labelled history: fit, score, store, load.

A history is a list of past reports in time order, each labelled duplicate or not (a city's
flag at closure, or a dispatcher's merge). Every report is compared with the earlier reports of
its category group within a radius and a window (``history_candidates``); the pairs' features
(features.pair_features) feed a logistic regression per category (categories with few labelled
duplicates are pooled), and the decision threshold is the one with the best F1 on the fitting
part. A report is predicted a duplicate when ``scoring.decide`` joins it to an earlier one:
the same function decides for the hand-set rule, for each fitted model and at intake.

Validation is a time split: fit on the earlier part, score on the later part, beside the
current rule and three simple rules (same address within N days, the best single radius and
window, FixMyStreet's 250 m rule), whose own settings are tuned on the earlier part too. A
model is stored only where it beats the current rule on the later part (or when forced):
where putting it in place of the current rule raises the data set's F1 there.

The model is stored as plain parameters (feature names, coefficients folded back to raw
feature units, intercept, threshold): no pickle, readable in SQL, loaded by intake and the
importer through ``load_model(s)``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ScalarSelect, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo311.resident.dedup import grid
from geo311.resident.dedup.features import FEATURES, pair_features
from geo311.resident.dedup.models import DedupModel
from geo311.resident.dedup.scoring import Candidate, NewReport, Rule, decide, normalise_address

# A category with fewer labelled duplicates than this in the fitting part is pooled with the
# other small ones: one model for all of them.
MIN_OWN_LABELS = 30
# A pool with fewer than this is not fitted at all: those categories keep the current rule.
MIN_POOL_LABELS = 10
POOLED = "*pooled*"
# The fitting part is cut into this many time blocks to choose the threshold on held-out scores.
THRESHOLD_BLOCKS = 4

# Baselines' settings, searched on the fitting part only.
RADII_M = (5, 10, 25, 50, 100, 250)
WINDOWS_H = (1, 6, 24, 72, 168, 720)
ADDRESS_DAYS = (1, 3, 7, 14, 30, 90)


# --- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairModel:
    """A fitted logistic model over pair features (scoring.PairScorer).

    ``coef`` are per raw feature value (log-odds units), so each feature's share of a score
    reads directly; ``threshold`` is in log-odds. ``radius_m`` and the windows are those the
    candidates it was fitted on came from.
    """

    category_code: str
    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    radius_m: float
    open_window_h: float
    reopen_window_h: float
    pooled: bool = False
    scores: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Align stored names with the features computed now (an unknown name weighs nothing).
        weights = dict(zip(self.features, self.coef, strict=True))
        object.__setattr__(self, "_aligned", tuple(weights.get(name, 0.0) for name in FEATURES))

    def logit(self, values: Sequence[float]) -> float:
        """Return the pair's log-odds of being one problem."""
        aligned: tuple[float, ...] = self._aligned  # type: ignore[attr-defined]
        return self.intercept + sum(w * v for w, v in zip(aligned, values, strict=True))

    def score(
        self, new: NewReport, candidate: Candidate, now: datetime
    ) -> tuple[float, dict[str, Any], dict[str, float]]:
        """Return the pair's log-odds, its signals, and each feature's share of the score."""
        values, signals = pair_features(new, candidate, now)
        aligned: tuple[float, ...] = self._aligned  # type: ignore[attr-defined]
        fired = {"base": self.intercept}
        for name, w, v in zip(FEATURES, aligned, values, strict=True):
            if w * v != 0.0:
                fired[name] = w * v
        signals["model"] = self.category_code if not self.pooled else POOLED
        return sum(fired.values()), signals, fired

    def params(self) -> dict[str, Any]:
        """Return the model as plain JSON (what is stored)."""
        return {
            "kind": "logistic",
            "features": list(self.features),
            "coef": [round(c, 6) for c in self.coef],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 6),
            "radius_m": self.radius_m,
            "open_window_h": self.open_window_h,
            "reopen_window_h": self.reopen_window_h,
            "pooled": self.pooled,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_params(cls, category_code: str, params: Mapping[str, Any]) -> PairModel:
        """Return the model stored as ``params`` (PairModel.params)."""
        return cls(
            category_code=category_code,
            features=tuple(params["features"]),
            coef=tuple(float(c) for c in params["coef"]),
            intercept=float(params["intercept"]),
            threshold=float(params["threshold"]),
            radius_m=float(params["radius_m"]),
            open_window_h=float(params["open_window_h"]),
            reopen_window_h=float(params["reopen_window_h"]),
            pooled=bool(params.get("pooled", False)),
            scores=dict(params.get("scores", {})),
        )

    def learnt(self, top: int = 5) -> str:
        """Return what the model weighs most, in plain words (for people)."""
        from geo311.resident.dedup.scoring import SIGNAL_WORDS

        ranked = sorted(zip(self.features, self.coef, strict=True), key=lambda x: -abs(x[1]))
        parts = [
            f"{SIGNAL_WORDS.get(name, name)} {'for' if w > 0 else 'against'} ({w:+.1f})"
            for name, w in ranked[:top]
            if abs(w) >= 0.05
        ]
        return "; ".join(parts) + f"; joins at log-odds ≥ {self.threshold:+.1f}"


def load_model(session: Session, *, jurisdiction_id: int, category_code: str) -> PairModel | None:
    """Return the category's stored model, or None when it has none (the hand-set rule)."""
    params = session.scalar(
        select(DedupModel.params).where(
            DedupModel.jurisdiction_id == jurisdiction_id,
            DedupModel.category_code == category_code,
        )
    )
    return None if params is None else PairModel.from_params(category_code, params)


def model_column(*, jurisdiction_id: int, category_code: str) -> ScalarSelect[Any]:
    """Return the stored model's parameters as a scalar subquery, for a caller that reads the
    category anyway (intake: no extra round trip). Turn the value into a model with
    ``model_of``."""
    return (
        select(DedupModel.params)
        .where(
            DedupModel.jurisdiction_id == jurisdiction_id,
            DedupModel.category_code == category_code,
        )
        .scalar_subquery()
    )


def model_of(category_code: str, params: Mapping[str, Any] | None) -> PairModel | None:
    """Return the model stored as ``params`` (None: the category has none)."""
    return None if params is None else PairModel.from_params(category_code, params)


def load_models(session: Session, *, jurisdiction_id: int) -> dict[str, PairModel]:
    """Return every stored model of the jurisdiction, by category code."""
    rows = session.execute(
        select(DedupModel.category_code, DedupModel.params).where(
            DedupModel.jurisdiction_id == jurisdiction_id
        )
    ).all()
    return {code: PairModel.from_params(code, params) for code, params in rows}


def store_model(session: Session, *, jurisdiction_id: int, model: PairModel, actor: str) -> None:
    """Store (or replace) the category's model. Flushes."""
    stmt = insert(DedupModel).values(
        jurisdiction_id=jurisdiction_id,
        category_code=model.category_code,
        params=model.params(),
        fitted_by=actor,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DedupModel.jurisdiction_id, DedupModel.category_code],
            # The new row's default (now()): Citus refuses now() itself in DO UPDATE SET.
            set_={
                "params": stmt.excluded.params,
                "fitted_by": actor,
                "fitted_at": stmt.excluded.fitted_at,
            },
        )
    )
    session.flush()


def drop_model(session: Session, *, jurisdiction_id: int, category_code: str) -> bool:
    """Forget the category's model (back to the hand-set rule); return whether it had one."""
    found = session.get(DedupModel, (jurisdiction_id, category_code))
    if found is None:
        return False
    session.delete(found)
    session.flush()
    return True


# --- the history ------------------------------------------------------------------------------


@dataclass(slots=True)
class HistoryRow:
    """One past report as fitting sees it (address normalised)."""

    id: str
    at: datetime
    category: str
    group: str
    lon: float
    lat: float
    label: bool
    address: str | None = None
    description: str | None = None
    closed_at: datetime | None = None
    asset_id: int | None = None

    def as_new(self) -> NewReport:
        return NewReport(
            category_code=self.category,
            at=self.at,
            asset_id=self.asset_id,
            address=self.address,
            description=self.description,
        )

    def as_candidate(self, index: int, distance_m: float, now: datetime) -> Candidate:
        closed = self.closed_at is not None and self.closed_at <= now
        return Candidate(
            incident_id=index,
            category_code=self.category,
            status="closed" if closed else "new",
            distance_m=distance_m,
            last_report_at=self.at,
            closed_at=self.closed_at if closed else None,
            asset_id=self.asset_id,
            addresses=(self.address,) if self.address else (),
            descriptions=(self.description,) if self.description else (),
        )


def history_row(
    *,
    id: str,
    at: datetime,
    category: str,
    group: str,
    lon: float,
    lat: float,
    label: bool,
    address: str | None = None,
    description: str | None = None,
    closed_at: datetime | None = None,
    asset_id: int | None = None,
) -> HistoryRow:
    """Return a history row with its address normalised as intake does."""
    return HistoryRow(
        id=id,
        at=at,
        category=category,
        group=group,
        lon=lon,
        lat=lat,
        label=label,
        address=normalise_address(address),
        description=(description or "").strip() or None,
        closed_at=closed_at if closed_at is None or closed_at >= at else at,
        asset_id=asset_id,
    )


def history_candidates(
    rows: Sequence[HistoryRow], *, radius_m: float, window_h: float
) -> list[list[tuple[int, float]]]:
    """Return, for each row (rows in time order), the earlier rows of its category group
    reported within ``window_h`` hours before it and within ``radius_m`` metres (inclusive):
    (index, distance in metres)."""
    size_lat = radius_m / 110_574.0
    kx, _ = grid.metres_per_degree(max((abs(r.lat) for r in rows), default=0.0))
    size_lon = radius_m / kx
    window = timedelta(hours=window_h)
    cells: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    out: list[list[tuple[int, float]]] = []
    for i, row in enumerate(rows):
        cx, cy = math.floor(row.lon / size_lon), math.floor(row.lat / size_lat)
        found: list[tuple[int, float]] = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                bucket = cells.get((row.group, cx + dx, cy + dy))
                if not bucket:
                    continue
                while bucket and row.at - rows[bucket[0]].at > window:
                    bucket.pop(0)
                for j in bucket:
                    other = rows[j]
                    d = grid.distance_m(row.lon, row.lat, other.lon, other.lat)
                    if d <= radius_m:
                        found.append((j, d))
        out.append(found)
        cells[(row.group, cx, cy)].append(i)
    return out


# --- scores -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Precision, recall and F1 of predicted duplicates against the labels."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def labelled(self) -> int:
        return self.tp + self.fn


def score_rows(rows: Sequence[HistoryRow], indexes: Iterable[int], predicted: set[int]) -> Score:
    """Return the score of ``predicted`` (row indexes) over the rows at ``indexes``."""
    tp = fp = fn = 0
    for i in indexes:
        guess, label = i in predicted, rows[i].label
        tp += guess and label
        fp += guess and not label
        fn += (not guess) and label
    return Score(tp, fp, fn)


def predict(
    rows: Sequence[HistoryRow],
    candidates: Sequence[Sequence[tuple[int, float]]],
    rules: Mapping[str, Rule],
    indexes: Iterable[int],
) -> set[int]:
    """Return the rows (of ``indexes``) that ``scoring.decide`` joins to an earlier one under
    each row's category rule (a category without a rule: never)."""
    out: set[int] = set()
    for i in indexes:
        row = rows[i]
        rule = rules.get(row.category)
        if rule is None or not candidates[i]:
            continue
        cands = [
            rows[j].as_candidate(j, d, row.at)
            for j, d in candidates[i]
            if d <= rule.radius_m and rows[j].category in rules
        ]
        if decide(row.as_new(), cands, rule, row.at).incident_id is not None:
            out.add(i)
    return out


# --- baselines ----------------------------------------------------------------------------------


def baseline_fms(
    rows: Sequence[HistoryRow], candidates: Sequence[Sequence[tuple[int, float]]]
) -> set[int]:
    """FixMyStreet's rule: an earlier report of the same category within 250 m, still open."""
    out: set[int] = set()
    for i, row in enumerate(rows):
        for j, d in candidates[i]:
            other = rows[j]
            if (
                d <= 250.0
                and other.category == row.category
                and (other.closed_at is None or other.closed_at > row.at)
            ):
                out.add(i)
                break
    return out


def _gaps(
    rows: Sequence[HistoryRow], candidates: Sequence[Sequence[tuple[int, float]]]
) -> list[dict[float, float]]:
    """For each row and radius: hours since the latest earlier same-category row within it."""
    out: list[dict[float, float]] = []
    for i, row in enumerate(rows):
        best: dict[float, float] = {}
        for j, d in candidates[i]:
            other = rows[j]
            if other.category != row.category:
                continue
            hours = (row.at - other.at).total_seconds() / 3600.0
            for radius in RADII_M:
                if d <= radius and hours < best.get(radius, math.inf):
                    best[radius] = hours
        out.append(best)
    return out


def _address_gaps(
    rows: Sequence[HistoryRow], candidates: Sequence[Sequence[tuple[int, float]]]
) -> list[float]:
    """For each row: days since the latest earlier same-category row at the same address."""
    out: list[float] = []
    for i, row in enumerate(rows):
        best = math.inf
        if row.address:
            for j, _ in candidates[i]:
                other = rows[j]
                if other.category == row.category and other.address == row.address:
                    best = min(best, (row.at - other.at).total_seconds() / 86400.0)
        out.append(best)
    return out


@dataclass(frozen=True)
class Method:
    """One way to call duplicates, with its settings and its predictions on the later part."""

    name: str
    settings: str
    predicted: set[int]


def baselines(
    rows: Sequence[HistoryRow],
    candidates: Sequence[Sequence[tuple[int, float]]],
    fit_part: Sequence[int],
    later_part: Sequence[int],
) -> list[Method]:
    """Return the three simple rules, their settings chosen on the fitting part."""
    later = set(later_part)
    gaps = _gaps(rows, candidates)
    best_rw = max(
        ((r, w) for r in RADII_M for w in WINDOWS_H),
        key=lambda rw: (
            score_rows(
                rows,
                fit_part,
                {i for i in fit_part if gaps[i].get(rw[0], math.inf) <= rw[1]},
            ).f1,
            -rw[0],
            -rw[1],
        ),
    )
    radius, window = best_rw
    agaps = _address_gaps(rows, candidates)
    days = max(
        ADDRESS_DAYS,
        key=lambda n: (score_rows(rows, fit_part, {i for i in fit_part if agaps[i] <= n}).f1, -n),
    )
    return [
        Method(
            "same address",
            f"same category and address within {days} d",
            {i for i in later if agaps[i] <= days},
        ),
        Method(
            "best radius and window",
            f"same category within {radius} m and {window} h",
            {i for i in later if gaps[i].get(radius, math.inf) <= window},
        ),
        Method(
            "FixMyStreet 250 m",
            "same category within 250 m, still open",
            baseline_fms(rows, candidates) & later,
        ),
    ]


# --- fitting ----------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Training pairs: feature rows, labels, and the history row each came from (-1: a move)."""

    x: list[list[float]] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)

    def add(self, values: list[float], label: bool, row: int) -> None:
        self.x.append(values)
        self.y.append(int(label))
        self.row.append(row)


def _fit_logistic(pairs: Pairs) -> tuple[np.ndarray, float]:
    """Return (coef per raw feature, intercept) of a regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(pairs.x, dtype=float)
    y = np.asarray(pairs.y, dtype=int)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit((x - mean) / scale, y)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - (coef * mean).sum())
    return coef, intercept


def _best_threshold(
    rows: Sequence[HistoryRow], part: Sequence[int], best_logit: Mapping[int, float]
) -> float:
    """Return the log-odds threshold with the best F1 over the rows of ``part``."""
    labelled = sum(rows[i].label for i in part)
    scored = sorted(((best_logit[i], rows[i].label) for i in part if i in best_logit), reverse=True)
    best_f1, best_t = -1.0, math.inf
    tp = fp = 0
    for k, (logit, label) in enumerate(scored):
        tp += label
        fp += not label
        if k + 1 < len(scored) and scored[k + 1][0] == logit:
            continue  # a threshold cannot split equal scores
        f1 = 2 * tp / (tp + fp + labelled) if labelled else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, logit
    return best_t - 1e-9 if math.isfinite(best_t) else 50.0


@dataclass(frozen=True)
class CategoryResult:
    """What fitting found for one category: its model and its scores on the later part."""

    code: str
    model: PairModel | None
    labelled_fit: int
    labelled_later: int
    rows_later: int
    current: Score
    fitted: Score | None
    stored: bool = False
    reason: str = ""
    # The data set's F1 on the later part with the current rule everywhere, and with this
    # category's model (for a pooled one: the pool's model for every pool category) instead.
    city_f1_current: float | None = None
    city_f1_with: float | None = None


@dataclass
class FitResult:
    """Everything a fit found: per category, overall, and the simple rules beside them."""

    rows: int
    fit_rows: int
    later_rows: int
    split_at: datetime | None
    categories: list[CategoryResult]
    overall: dict[str, Score]
    per_category: dict[str, dict[str, Score]]
    settings: dict[str, str]
    move_pairs: int = 0
    # The history in time order (indexes below are into it) and each method's predicted
    # duplicates on the later part: for a caller that resamples the scores (bench/dedup_eval).
    history: Sequence[HistoryRow] = ()
    predicted: dict[str, set[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the candidates' radius and windows, the share of rows kept for scoring."""

    radius_m: float = 250.0
    open_window_h: float = 90 * 24.0
    reopen_window_h: float = 14 * 24.0
    later_share: float = 0.3


def fit_history(
    rows: Sequence[HistoryRow],
    *,
    current: Mapping[str, Rule],
    options: FitOptions = FitOptions(),
    extra_pairs: Mapping[str, Pairs] | None = None,
) -> FitResult:
    """Fit a model per category on the earlier part of ``rows`` (time order); return each
    model with its scores on the later part, beside the current rules and the baselines.

    ``current`` is each category's rule in force now (placing.rule_of); ``extra_pairs`` are
    labelled pairs from dispatchers' merges and splits, by category. Stores nothing.
    """
    rows = sorted(rows, key=lambda r: r.at)
    n = len(rows)
    cut = int(n * (1.0 - options.later_share))
    fit_part = list(range(cut))
    later_part = list(range(cut, n))
    window_h = max(options.open_window_h, options.reopen_window_h, 30 * 24.0)
    radius_m = max([options.radius_m, 250.0, *(r.radius_m for r in current.values())])
    candidates = history_candidates(rows, radius_m=radius_m, window_h=window_h)

    # Features of every (row, candidate within the model's radius) pair, once.
    feats: dict[int, list[tuple[int, list[float]]]] = {}
    for i in range(n):
        row = rows[i]
        if row.category not in current:
            continue
        near = [(j, d) for j, d in candidates[i] if d <= options.radius_m]
        if near:
            new = row.as_new()
            feats[i] = [
                (j, pair_features(new, rows[j].as_candidate(j, d, row.at), row.at)[0])
                for j, d in near
            ]

    by_code: dict[str, list[int]] = defaultdict(list)
    for i in fit_part:
        by_code[rows[i].category].append(i)
    labelled_fit = {code: sum(rows[i].label for i in idx) for code, idx in by_code.items()}
    present = {r.category for r in rows} & set(current)
    own = {code for code in present if labelled_fit.get(code, 0) >= MIN_OWN_LABELS}
    pool = sorted(present - own)
    pool_labels = sum(labelled_fit.get(code, 0) for code in pool)

    def train(part: Sequence[int], codes: Sequence[str]) -> tuple[np.ndarray, float] | None:
        """Return (coef, intercept) fitted on the rows ``part`` and the codes' move pairs, or
        None when those hold only one label."""
        pairs = Pairs()
        for i in part:
            for _, values in feats.get(i, ()):
                pairs.add(values, rows[i].label, i)
        for c in codes:
            extra = (extra_pairs or {}).get(c)
            if extra:
                for values, label in zip(extra.x, extra.y, strict=True):
                    pairs.add(values, bool(label), -1)
        if not 0 < sum(pairs.y) < len(pairs.y):
            return None
        coef, intercept = _fit_logistic(pairs)
        # A duplicate is a duplicate of one earlier report, not of all of them: refit with
        # only its best-scoring candidate as the positive pair (the others say nothing).
        refined = Pairs()
        for i in part:
            found = feats.get(i, ())
            if not found:
                continue
            if rows[i].label:
                best = max(found, key=lambda jv: float(np.dot(coef, jv[1])))
                refined.add(best[1], True, i)
            else:
                for _, values in found:
                    refined.add(values, False, i)
        for k, r in enumerate(pairs.row):
            if r == -1:
                refined.add(pairs.x[k], bool(pairs.y[k]), -1)
        if 0 < sum(refined.y) < len(refined.y):
            coef, intercept = _fit_logistic(refined)
        return coef, intercept

    def best_logits(coef: np.ndarray, intercept: float, part: Iterable[int]) -> dict[int, float]:
        return {
            i: max(intercept + float(np.dot(coef, v)) for _, v in feats[i])
            for i in part
            if i in feats
        }

    def fit_for(codes: Sequence[str], name: str, pooled: bool) -> PairModel:
        part = sorted(i for c in codes for i in by_code.get(c, ()))
        fitted = train(part, codes)
        assert fitted is not None  # a fitted category has labelled duplicates
        coef, intercept = fitted
        # A category's own threshold is chosen on scores of rows each model did not see (the
        # part cut in time blocks, each scored by a model fitted on the others): on the rows a
        # model was fitted to, duplicates and the rest part more cleanly than on new ones, and
        # the F1-best threshold there is too strict (NYC's heat complaints: later F1 0.468 with
        # it, 0.524 held out). The pool keeps the in-sample threshold: its time blocks hold
        # different mixes of small categories, and a held-out threshold there joined 567 rows
        # of NYC's later part for 23 duplicates (F1 0.072 against 0.414).
        held_out: dict[int, float] = {}
        blocks = [] if pooled else np.array_split(np.asarray(part, dtype=int), THRESHOLD_BLOCKS)
        for block in blocks:
            held = {int(i) for i in block}
            other = train([i for i in part if i not in held], codes)
            if other is None:
                held_out = {}
                break
            held_out.update(best_logits(*other, held))
        threshold = _best_threshold(rows, part, held_out or best_logits(coef, intercept, part))
        return PairModel(
            category_code=name,
            features=FEATURES,
            coef=tuple(float(c) for c in coef),
            intercept=intercept,
            threshold=threshold,
            radius_m=options.radius_m,
            open_window_h=options.open_window_h,
            reopen_window_h=options.reopen_window_h,
            pooled=pooled,
        )

    models: dict[str, PairModel] = {}
    for code in sorted(own):
        models[code] = fit_for([code], code, pooled=False)
    if pool and pool_labels >= MIN_POOL_LABELS:
        pooled = fit_for(pool, POOLED, pooled=True)
        for code in pool:
            models[code] = PairModel.from_params(code, pooled.params())

    fitted_rules = {
        code: _with_model(rule, models[code]) if code in models else rule
        for code, rule in current.items()
    }
    current_pred = predict(rows, candidates, current, later_part)
    fitted_pred = predict(rows, candidates, fitted_rules, later_part)
    simple = baselines(rows, candidates, fit_part, later_part)
    later_by_code: dict[str, list[int]] = defaultdict(list)
    for i in later_part:
        later_by_code[rows[i].category].append(i)
    results = []
    for code in sorted(current):
        model = models.get(code)
        idx = later_by_code.get(code, [])
        cur = score_rows(rows, idx, current_pred)
        fit = score_rows(rows, idx, fitted_pred) if model is not None else None
        if model is not None and fit is not None:
            model = PairModel.from_params(
                code,
                {
                    **model.params(),
                    "scores": {
                        "later_f1": round(fit.f1, 4),
                        "current_f1": round(cur.f1, 4),
                        "later_labelled": cur.labelled,
                        "fit_labelled": labelled_fit.get(code, 0),
                        "split_at": rows[cut].at.isoformat() if cut < n else None,
                    },
                },
            )
        results.append(
            CategoryResult(
                code=code,
                model=model,
                labelled_fit=labelled_fit.get(code, 0),
                labelled_later=cur.labelled,
                rows_later=len(idx),
                current=cur,
                fitted=fit,
            )
        )
    base = score_rows(rows, later_part, current_pred)

    def city_f1_with(codes: set[str]) -> float:
        swapped = {i for i in current_pred if rows[i].category not in codes} | {
            i for i in fitted_pred if rows[i].category in codes
        }
        return score_rows(rows, later_part, swapped).f1

    pooled_codes = {c.code for c in results if c.model is not None and c.model.pooled}
    pool_f1 = city_f1_with(pooled_codes) if pooled_codes else None
    results = [
        c
        if c.model is None
        else replace(
            c,
            city_f1_current=base.f1,
            city_f1_with=pool_f1 if c.model.pooled else city_f1_with({c.code}),
        )
        for c in results
    ]
    # What a city gets: the fitted model where it is kept, the current rule elsewhere.
    kept = {c.code for c in _decide_storing(results, force=False) if c.stored}
    kept_pred = {i for i in fitted_pred if rows[i].category in kept} | {
        i for i in current_pred if rows[i].category not in kept
    }
    methods = [
        Method("current rule", "the hand-set weights and each category's settings", current_pred),
        Method("fitted", "a model per category (small ones pooled), every category", fitted_pred),
        Method(
            "fitted where kept",
            "the fitted model where it beat the current rule, the current rule elsewhere",
            kept_pred,
        ),
        *simple,
    ]
    overall = {m.name: score_rows(rows, later_part, m.predicted) for m in methods}
    per_category = {
        code: {m.name: score_rows(rows, idx, m.predicted) for m in methods}
        for code, idx in sorted(later_by_code.items())
    }
    return FitResult(
        rows=n,
        fit_rows=cut,
        later_rows=n - cut,
        split_at=rows[cut].at if cut < n else None,
        categories=results,
        overall=overall,
        per_category=per_category,
        settings={m.name: m.settings for m in methods},
        move_pairs=sum(len(p.y) for p in (extra_pairs or {}).values()),
        history=rows,
        predicted={m.name: m.predicted for m in methods},
    )


def _with_model(rule: Rule, model: PairModel) -> Rule:
    """Return the rule with the model deciding (scoring.rule_for does the same)."""
    return replace(
        rule,
        model=model,
        threshold=model.threshold,
        radius_m=model.radius_m,
        open_window_h=model.open_window_h,
        reopen_window_h=model.reopen_window_h,
    )


def choose(result: FitResult, *, force: bool = False) -> list[CategoryResult]:
    """Return the categories' results marked stored or not, and why: a model is kept only
    where it beats the current rule's F1 on the later part (or when forced)."""
    return _decide_storing(result.categories, force=force)


def _decide_storing(categories: Iterable[CategoryResult], *, force: bool) -> list[CategoryResult]:
    """Mark each category's model stored or not. A model is kept when putting it in place of
    the current rule raises the data set's F1 on the later part (its own category's F1 is
    printed beside it, but with a handful of labels per category F1 alone says little: a
    rule with 1 hit and 700 false joins "beats" one with none and 1)."""
    out = []
    for c in categories:
        own = (
            ""
            if c.fitted is None
            else f" (category F1 {c.fitted.f1:.3f} against {c.current.f1:.3f})"
        )
        if c.model is None or c.fitted is None:
            stored, reason = False, "too few labelled duplicates to fit: current rule kept"
        elif force:
            stored, reason = True, "stored (forced)" + own
        elif c.city_f1_with is None or c.city_f1_current is None:
            stored = c.fitted.f1 > c.current.f1
            reason = f"F1 {c.fitted.f1:.3f} against the current {c.current.f1:.3f}" + (
                "" if stored else ": does not beat the current rule, not stored"
            )
        else:
            pool = "the pool's model: " if c.model.pooled else ""
            stored = c.city_f1_with > c.city_f1_current
            reason = f"{pool}overall F1 {c.city_f1_current:.3f} → {c.city_f1_with:.3f}{own}" + (
                "" if stored else ": does not beat the current rule, not stored"
            )
        out.append(replace(c, stored=stored, reason=reason))
    return out


def store_chosen(
    session: Session, *, jurisdiction_id: int, chosen: Iterable[CategoryResult], actor: str
) -> int:
    """Store the models marked stored; return how many. Flushes."""
    n = 0
    for c in chosen:
        if c.stored and c.model is not None:
            store_model(session, jurisdiction_id=jurisdiction_id, model=c.model, actor=actor)
            n += 1
    return n


# --- dispatchers' merges and splits -----------------------------------------------------------

_MOVES = text(
    """
    SELECT m.kind, m.from_incident_id, m.to_incident_id, m.report_ids,
           r.category_code, r.reported_at, r.address, r.description, r.asset_id,
           ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,
           other.category_code AS o_category, other.last_at, other.addresses,
           other.descriptions, other.asset_id AS o_asset,
           ST_Distance(r.geom::geography, other.geom::geography) AS distance_m
    FROM incident_moves AS m
    JOIN reports AS r ON r.jurisdiction_id = m.jurisdiction_id AND r.id = m.report_ids[1]
    CROSS JOIN LATERAL (
        SELECT i.category_code, i.asset_id, i.geom,
               max(x.reported_at) AS last_at,
               array_agg(DISTINCT x.address) FILTER (WHERE x.address IS NOT NULL) AS addresses,
               array_agg(DISTINCT x.description) FILTER (WHERE x.description <> '')
                   AS descriptions
        FROM incidents AS i
        JOIN reports AS x ON x.jurisdiction_id = i.jurisdiction_id AND x.incident_id = i.id
        WHERE i.jurisdiction_id = m.jurisdiction_id
          AND i.id = CASE WHEN m.kind = 'merge' THEN m.to_incident_id ELSE m.from_incident_id END
          AND x.id <> ALL (m.report_ids)
        GROUP BY i.category_code, i.asset_id, i.geom
    ) AS other
    WHERE m.jurisdiction_id = :jid AND m.undone_at IS NULL
    """
)


def pairs_from_moves(session: Session, *, jurisdiction_id: int) -> dict[str, Pairs]:
    """Return labelled pairs from the dispatchers' moves, by category: a merge says the moved
    report and the incident it went to are one problem, a split that the report split out and
    the incident it left are not."""
    out: dict[str, Pairs] = defaultdict(Pairs)
    for m in session.execute(_MOVES, {"jid": jurisdiction_id}).all():
        new = NewReport(
            category_code=m.category_code,
            at=m.reported_at,
            asset_id=m.asset_id,
            address=normalise_address(m.address),
            description=m.description or None,
        )
        candidate = Candidate(
            incident_id=m.to_incident_id if m.kind == "merge" else m.from_incident_id,
            category_code=m.o_category,
            status="new",
            distance_m=float(m.distance_m),
            last_report_at=min(m.last_at, m.reported_at),
            asset_id=m.o_asset,
            addresses=tuple(
                a for a in (normalise_address(x) for x in m.addresses or ()) if a is not None
            ),
            descriptions=tuple(m.descriptions or ()),
        )
        values, _ = pair_features(new, candidate, m.reported_at)
        out[m.category_code].add(values, m.kind == "merge", -1)
    return dict(out)


# --- how each rule has done ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecentRecord:
    """How one category's rule has done since a time: what it decided, and what dispatchers
    corrected (a split undoes a wrong join; a merge finds a missed one)."""

    category_code: str
    rule: str
    fitted_at: datetime | None
    fitted_f1: float | None
    reports: int
    joined: int
    splits: int
    merges: int

    @property
    def join_precision(self) -> float | None:
        """Share of joins no dispatcher split off again (None: no join)."""
        return None if not self.joined else max(0.0, 1.0 - self.splits / self.joined)

    @property
    def join_recall(self) -> float | None:
        """Share of duplicates found at intake rather than merged later (None: none)."""
        found = self.joined - self.splits
        return None if found + self.merges <= 0 else max(0.0, found) / (found + self.merges)


_RECENT = text(
    """
    WITH decided AS (
        SELECT r.category_code, count(*) AS reports,
               count(*) FILTER (WHERE r.dedup_decision IN ('matched', 'reopened')) AS joined
        FROM reports AS r
        WHERE r.jurisdiction_id = :jid AND r.reported_at >= :since
        GROUP BY r.category_code
    ),
    moved AS (
        SELECT r.category_code,
               count(*) FILTER (WHERE m.kind = 'split') AS splits,
               count(*) FILTER (WHERE m.kind = 'merge') AS merges
        FROM incident_moves AS m
        JOIN reports AS r ON r.jurisdiction_id = m.jurisdiction_id AND r.id = m.report_ids[1]
        WHERE m.jurisdiction_id = :jid AND m.at >= :since AND m.undone_at IS NULL
        GROUP BY r.category_code
    )
    SELECT c.code, d.reports, d.joined, mv.splits, mv.merges, dm.params, dm.fitted_at
    FROM service_categories AS c
    LEFT JOIN decided AS d ON d.category_code = c.code
    LEFT JOIN moved AS mv ON mv.category_code = c.code
    LEFT JOIN dedup_models AS dm
        ON dm.jurisdiction_id = c.jurisdiction_id AND dm.category_code = c.code
    WHERE c.jurisdiction_id = :jid AND c.active
    ORDER BY c.code
    """
)


def recent_record(session: Session, *, jurisdiction_id: int, since: datetime) -> list[RecentRecord]:
    """Return each active category's record since ``since``."""
    out = []
    for row in session.execute(_RECENT, {"jid": jurisdiction_id, "since": since}).all():
        params = row.params or {}
        scores = params.get("scores", {})
        out.append(
            RecentRecord(
                category_code=row.code,
                rule=("fitted (pooled)" if params.get("pooled") else "fitted")
                if row.params
                else "hand-set",
                fitted_at=row.fitted_at,
                fitted_f1=scores.get("later_f1"),
                reports=row.reports or 0,
                joined=row.joined or 0,
                splits=row.splits or 0,
                merges=row.merges or 0,
            )
        )
    return out
