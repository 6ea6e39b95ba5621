"""Duplicate scoring: a new report's signals against one candidate incident → a score, and
the candidates → a decision. Pure: no database, no clock, no I/O.

The score is a sum of signal contributions (weights in ``DedupSettings.weights``):

- ``within_radius`` when the distance is at most the category's radius — inclusive: a report
  exactly ``radius_m`` away is within it;
- ``closeness`` × (1 − distance / radius), so nearer scores higher;
- ``same_asset`` when both snapped to the same asset (whatever the distance), ``other_asset``
  when both snapped to different assets (two streetlights side by side are two problems);
- ``photo_similar`` / ``photo_different`` from the smallest perceptual-hash Hamming distance
  between the new photo and the incident's photos, when both have one;
- ``same_address`` / ``other_address`` from normalised address text, when both have one;
- ``other_category`` when the incident is of another category of the same group;
- ``age`` × (1 − 2^(−quiet hours / half-life)): the longer the incident has been quiet (since
  its last report, or since it closed), the less a new report is about it.

A candidate scoring at least the threshold is a match; the best match wins (open before
closed on a tie). A match with a closed incident reopens it.

A category may instead have a model fitted on the city's own history (``learning.PairModel``,
stored per category): the rule then carries it, its score is the model's log-odds that the
pair is one problem (each feature's share is what "fired"), its threshold the model's, and its
radius and windows the ones it was fitted for. ``decide`` is the same either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from geo311.kernel.settings import DedupSettings, DedupWeights

# Incidents in these statuses are done: a new report within the reopen window reopens them.
CLOSED_STATUSES = ("completed", "closed")
# Incidents in these statuses are never matched: merged away, or handed to someone else.
UNMATCHABLE_STATUSES = ("cancelled", "transferred")

DecisionKind = Literal["new", "matched", "reopened", "off"]


class PairScorer(Protocol):
    """A fitted model that scores a (new report, candidate) pair: learning.PairModel."""

    @property
    def threshold(self) -> float: ...
    @property
    def radius_m(self) -> float: ...
    @property
    def open_window_h(self) -> float: ...
    @property
    def reopen_window_h(self) -> float: ...

    def score(
        self, new: NewReport, candidate: Candidate, now: datetime
    ) -> tuple[float, dict[str, Any], dict[str, float]]:
        """Return the pair's score (log-odds), its raw signals and each feature's share."""
        ...


@dataclass(frozen=True)
class Rule:
    """The dedup settings in force for one category: global defaults and its own overrides,
    or the model fitted on the city's history for it (``model``)."""

    enabled: bool
    radius_m: float
    threshold: float
    open_window_h: float
    reopen_window_h: float
    age_half_life_h: float
    photo_similar_bits: int
    photo_different_bits: int
    weights: DedupWeights
    model: PairScorer | None = None


def rule_for(
    settings: DedupSettings,
    *,
    radius_m: float,
    enabled: bool = True,
    threshold: float | None = None,
    open_window_h: float | None = None,
    reopen_window_h: float | None = None,
    weights: Mapping[str, float] | None = None,
    model: PairScorer | None = None,
) -> Rule:
    """Return the rule of a category: each None or missing override takes the global default.

    ``weights`` may name any subset of DedupWeights' fields; an unknown name raises
    pydantic's ValidationError. With a fitted ``model`` (learning.load_model), the model
    scores, and its threshold, radius and windows replace the category's.
    """
    merged = settings.weights
    if weights:
        merged = DedupWeights.model_validate({**settings.weights.model_dump(), **weights})
    if model is not None:
        return Rule(
            enabled=settings.enabled and enabled,
            radius_m=model.radius_m,
            threshold=model.threshold,
            open_window_h=model.open_window_h,
            reopen_window_h=model.reopen_window_h,
            age_half_life_h=settings.age_half_life_h,
            photo_similar_bits=settings.photo_similar_bits,
            photo_different_bits=settings.photo_different_bits,
            weights=merged,
            model=model,
        )
    return Rule(
        enabled=settings.enabled and enabled,
        radius_m=float(radius_m),
        threshold=settings.threshold if threshold is None else threshold,
        open_window_h=settings.open_window_h if open_window_h is None else open_window_h,
        reopen_window_h=settings.reopen_window_h if reopen_window_h is None else reopen_window_h,
        age_half_life_h=settings.age_half_life_h,
        photo_similar_bits=settings.photo_similar_bits,
        photo_different_bits=settings.photo_different_bits,
        weights=merged,
    )


# The value classes below are created by the hundred thousand in a bulk import: plain slotted
# dataclasses (a frozen one is six times slower to create). Treat them as immutable.


@dataclass(slots=True)
class NewReport:
    """What is known of the incoming report when it is compared."""

    category_code: str
    at: datetime
    asset_id: int | None = None
    address: str | None = None  # normalised (normalise_address)
    photo_hash: str | None = None  # hex pHash
    description: str | None = None


@dataclass(slots=True)
class Candidate:
    """An existing incident that the new report might be about.

    ``last_report_at`` is when its latest report came in; ``closed_at`` is when it closed,
    None while it is open. ``addresses`` are its reports' normalised addresses and
    ``photo_hashes`` their photos' pHashes. ``nearest_report_id`` is the incident's report
    nearest the new one (what the new report is "matched to").
    """

    incident_id: int
    category_code: str
    status: str
    distance_m: float
    last_report_at: datetime
    closed_at: datetime | None = None
    asset_id: int | None = None
    addresses: tuple[str, ...] = ()
    photo_hashes: tuple[str, ...] = ()
    nearest_report_id: int | None = None
    descriptions: tuple[str, ...] = ()  # its reports' descriptions (fitted models compare them)

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATUSES


@dataclass(slots=True)
class Scored:
    """One candidate's score, the raw signals, and what each fired signal contributed."""

    candidate: Candidate
    score: float
    signals: dict[str, Any]
    fired: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        """Return the scored candidate as plain JSON (stored with the report)."""
        return {
            "incident_id": self.candidate.incident_id,
            "report_id": self.candidate.nearest_report_id,
            "score": round(self.score, 4),
            **self.signals,
            "fired": {k: round(v, 4) for k, v in self.fired.items()},
            "why": fired_words(self.fired),
        }


@dataclass(slots=True)
class Decision:
    """What to do with a new report, and why."""

    kind: DecisionKind
    threshold: float
    radius_m: float
    best: Scored | None = None
    candidates: int = 0
    considered: tuple[Scored, ...] = field(default=(), repr=False)

    @property
    def incident_id(self) -> int | None:
        """The incident to join, or None when the report opens a new one."""
        if self.kind in ("matched", "reopened") and self.best is not None:
            return self.best.candidate.incident_id
        return None

    @property
    def score(self) -> float | None:
        return None if self.best is None else self.best.score

    def as_json(self) -> dict[str, Any]:
        """Return the decision's reasons as plain JSON (stored with the report)."""
        return {
            "decision": self.kind,
            "threshold": self.threshold,
            "radius_m": self.radius_m,
            "candidates": self.candidates,
            "best": None if self.best is None else self.best.as_json(),
        }


def hamming(a_hex: str, b_hex: str) -> int:
    """Return the number of differing bits between two hex hashes of the same length."""
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def quiet_hours(candidate: Candidate, now: datetime) -> float:
    """Return the hours since the candidate's last report (open) or since it closed."""
    since = candidate.closed_at if candidate.closed and candidate.closed_at else None
    reference = since or candidate.last_report_at
    return max(0.0, (now - reference).total_seconds() / 3600.0)


def is_live(candidate: Candidate, rule: Rule, now: datetime) -> bool:
    """Return True when the candidate may still be matched at ``now``.

    Open: its last report is at most ``open_window_h`` old. Closed: it closed at most
    ``reopen_window_h`` ago. Cancelled or transferred: never.
    """
    if candidate.status in UNMATCHABLE_STATUSES:
        return False
    window_h = rule.reopen_window_h if candidate.closed else rule.open_window_h
    return quiet_hours(candidate, now) <= window_h


def score(new: NewReport, candidate: Candidate, rule: Rule, now: datetime) -> Scored:
    """Return the candidate's score for the new report, with its signals."""
    if rule.model is not None:
        value, model_signals, model_fired = rule.model.score(new, candidate, now)
        return Scored(candidate=candidate, score=value, signals=model_signals, fired=model_fired)
    w = rule.weights
    fired: dict[str, float] = {}
    distance_m = candidate.distance_m
    signals: dict[str, Any] = {"distance_m": round(distance_m, 2)}

    if distance_m <= rule.radius_m:
        fired["within_radius"] = w.within_radius
        if rule.radius_m > 0:
            fired["closeness"] = w.closeness * (1.0 - distance_m / rule.radius_m)
        else:
            fired["closeness"] = w.closeness

    same_asset: bool | None = None
    if new.asset_id is not None and candidate.asset_id is not None:
        same_asset = new.asset_id == candidate.asset_id
        fired["same_asset" if same_asset else "other_asset"] = (
            w.same_asset if same_asset else w.other_asset
        )
    signals["same_asset"] = same_asset

    photo_bits: int | None = None
    if new.photo_hash and candidate.photo_hashes:
        photo_bits = min(hamming(new.photo_hash, h) for h in candidate.photo_hashes)
        if photo_bits <= rule.photo_similar_bits:
            fired["photo_similar"] = w.photo_similar
        elif photo_bits >= rule.photo_different_bits:
            fired["photo_different"] = w.photo_different
    signals["photo_bits"] = photo_bits

    same_address: bool | None = None
    if new.address and candidate.addresses:
        same_address = new.address in candidate.addresses
        fired["same_address" if same_address else "other_address"] = (
            w.same_address if same_address else w.other_address
        )
    signals["same_address"] = same_address

    same_category = new.category_code == candidate.category_code
    if not same_category:
        fired["other_category"] = w.other_category
    signals["same_category"] = same_category

    age_h = quiet_hours(candidate, now)
    signals["age_h"] = round(age_h, 2)
    signals["closed"] = candidate.closed
    decay = 1.0 - math.pow(2.0, -age_h / rule.age_half_life_h)
    if decay > 0:
        fired["age"] = w.age * decay

    fired = {k: v for k, v in fired.items() if v != 0.0}
    return Scored(candidate=candidate, score=sum(fired.values()), signals=signals, fired=fired)


def decide(new: NewReport, candidates: Iterable[Candidate], rule: Rule, now: datetime) -> Decision:
    """Return the decision for a new report given the candidate incidents near it.

    Candidates that are no longer live are ignored. The best-scoring candidate at or above the
    threshold is joined (reopened when closed); ties go to an open incident, then the nearer,
    then the older. Without a match the report opens a new incident; ``best`` still tells the
    nearest miss.
    """
    if not rule.enabled:
        return Decision(kind="off", threshold=rule.threshold, radius_m=rule.radius_m)
    scored = [score(new, c, rule, now) for c in candidates if is_live(c, rule, now)]
    scored.sort(
        key=lambda s: (
            -s.score,
            s.candidate.closed,
            s.candidate.distance_m,
            s.candidate.incident_id,
        )
    )
    best = scored[0] if scored else None
    kind: DecisionKind = "new"
    if best is not None and best.score >= rule.threshold:
        kind = "reopened" if best.candidate.closed else "matched"
    return Decision(
        kind=kind,
        threshold=rule.threshold,
        radius_m=rule.radius_m,
        best=best,
        candidates=len(scored),
        considered=tuple(scored),
    )


def fired_text(fired: Mapping[str, float]) -> str:
    """Return the fired signals as ``name+0.50 name-0.25`` (for reports and logs)."""
    return " ".join(f"{k}{v:+.2f}" for k, v in fired.items())


# What each signal (hand-set or fitted) means, for people reading a decision.
SIGNAL_WORDS = {
    "within_radius": "within the category's radius",
    "closeness": "near",
    "same_asset": "same asset",
    "other_asset": "another asset",
    "photo_similar": "similar photo",
    "photo_different": "different photo",
    "same_address": "same address",
    "other_address": "another address",
    "other_category": "another category of the group",
    "age": "quiet for a while",
    "base": "base rate",
    "near_10m": "within 10 m",
    "near_25m": "within 25 m",
    "near_50m": "within 50 m",
    "near_100m": "within 100 m",
    "near_250m": "within 250 m",
    "distance": "distance",
    "same_street_other_number": "same street, another house number",
    "other_street": "another street",
    "quiet_1d": "last report under a day before",
    "quiet_3d": "last report under 3 days before",
    "quiet_7d": "last report under a week before",
    "quiet_14d": "last report under 2 weeks before",
    "quiet_30d": "last report under 30 days before",
    "quiet": "time since the last report",
    "closed": "already closed",
    "description_alike": "description alike",
    "description_differs": "description differs",
}


def fired_words(fired: Mapping[str, float]) -> str:
    """Return the fired signals in plain words, strongest first: ``same address (+2.1),
    another house number (−3.0)``."""
    ordered = sorted(fired.items(), key=lambda kv: -abs(kv[1]))
    return ", ".join(
        f"{SIGNAL_WORDS.get(k, k.replace('_', ' '))} ({v:+.1f})" for k, v in ordered if v != 0.0
    )


# --- address text ----------------------------------------------------------------------------

_SUFFIXES = {
    "STREET": "ST",
    "STR": "ST",
    "AVENUE": "AVE",
    "AV": "AVE",
    "ROAD": "RD",
    "BOULEVARD": "BLVD",
    "PLACE": "PL",
    "DRIVE": "DR",
    "LANE": "LN",
    "COURT": "CT",
    "TERRACE": "TER",
    "PARKWAY": "PKWY",
    "HIGHWAY": "HWY",
    "SQUARE": "SQ",
    "EXPRESSWAY": "EXPY",
    "TURNPIKE": "TPKE",
    "CIRCLE": "CIR",
    "HEIGHTS": "HTS",
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
    "SAINT": "ST",
    "MOUNT": "MT",
    "FORT": "FT",
}
_UNIT = re.compile(r"\b(APT|APARTMENT|UNIT|STE|SUITE|FL|FLOOR|RM|ROOM)\b\.?\s*\S+|#\s*\S+")
_ORDINAL = re.compile(r"\b(\d+)(ST|ND|RD|TH)\b")
_ZIP = re.compile(r"\s\d{5}(-\d{4})?$|\s\d{4}(\.0)?$")
_PUNCT = re.compile(r"[^A-Z0-9\- ]+")
_LOOSE_HYPHEN = re.compile(r"(?<![0-9])-|-(?![0-9])")
_INTERSECTION = re.compile(r"^(INTERSECTION( OF)?|CORNER( OF)?)\s+")


@lru_cache(maxsize=65536)
def normalise_address(raw: str | None) -> str | None:
    """Return address text in a canonical form for comparison, or None when there is none.

    Upper case, unit numbers dropped (APT 4B, #12), suffixes and directions abbreviated
    (AVENUE → AVE, WEST → W), ordinals bare (3RD → 3), a trailing ZIP dropped, whitespace
    collapsed; an intersection "A & B" and "B and A" come out the same.
    """
    if raw is None:
        return None
    text = raw.upper().replace("&", " AND ").replace("@", " AND ")
    text = _UNIT.sub(" ", text)
    text = _PUNCT.sub(" ", text)
    text = _LOOSE_HYPHEN.sub(" ", text)
    text = " ".join(text.split())
    text = _ZIP.sub("", text).strip()
    text = _ORDINAL.sub(r"\1", text)
    words = [_SUFFIXES.get(word, word) for word in text.split()]
    text = " ".join(words)
    text = _INTERSECTION.sub("", text)
    if " AND " in text:
        text = " AND ".join(sorted(part.strip() for part in text.split(" AND ")))
    return text or None


def normalise_addresses(raw: Sequence[str | None]) -> tuple[str, ...]:
    """Return the distinct normalised forms of several addresses, in first-seen order."""
    seen: dict[str, None] = {}
    for value in raw:
        norm = normalise_address(value)
        if norm:
            seen.setdefault(norm, None)
    return tuple(seen)
