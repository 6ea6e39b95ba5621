"""Pair features: what a fitted duplicate model knows of a (new report, candidate) pair.

One function, ``pair_features``, computes them at intake, in the importer and when fitting, so
a model sees at run time exactly what it was fitted on. Pure: no database, no clock.

The features are numbers a logistic model weighs additively, chosen so that the rules cities
use are sums of them: distance and quiet time come as nested bands ("within 25 m", "last
report under 3 days before") besides a smooth log term, so "within 30 m within 14 days" is two
weights and a threshold; the address is compared as house number and street, so "same street,
another house number" can outweigh a few metres; descriptions are compared with rapidfuzz's
token-set ratio (no model, no network).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz

from geo311.resident.dedup.scoring import Candidate, NewReport, hamming, quiet_hours

FEATURES: tuple[str, ...] = (
    "near_10m",
    "near_25m",
    "near_50m",
    "near_100m",
    "near_250m",
    "distance",
    "same_asset",
    "other_asset",
    "same_address",
    "same_street_other_number",
    "other_street",
    "quiet_1d",
    "quiet_3d",
    "quiet_7d",
    "quiet_14d",
    "quiet_30d",
    "quiet",
    "closed",
    "photo_similar",
    "photo_different",
    "description_alike",
    "description_differs",
    "other_category",
)
_NEAR_M = (10.0, 25.0, 50.0, 100.0, 250.0)
_QUIET_H = (24.0, 72.0, 168.0, 336.0, 720.0)
# The log terms are scaled to about 0..1 over the ranges candidates come from.
_LOG_1KM = math.log1p(1000.0)
_LOG_90D = math.log1p(90 * 24.0)
# pHash bits: the hand-set rule's defaults (DedupSettings), so both read a photo alike.
PHOTO_SIMILAR_BITS = 10
PHOTO_DIFFERENT_BITS = 24
# Token-set ratio (0..1) at which two descriptions count as saying the same thing.
DESCRIPTION_ALIKE = 0.6

_HOUSE = re.compile(r"^(\d+[A-Z]?(?:-\d+[A-Z]?)?)\s+(\D.*)$")


@lru_cache(maxsize=65536)
def split_address(normalised: str) -> tuple[str | None, str]:
    """Return (house number, street) of a normalised address; (None, text) for an
    intersection or an address without a leading number."""
    found = _HOUSE.match(normalised)
    if found is None or " AND " in normalised:
        return None, normalised
    return found.group(1), found.group(2)


def address_agreement(new: str | None, others: tuple[str, ...]) -> str | None:
    """Return "same", "same_street_other_number", "other_street", or None when either side
    has no address (or the street agrees but a house number is missing)."""
    if not new or not others:
        return None
    if new in others:
        return "same"
    number, street = split_address(new)
    same_street = False
    for other in others:
        other_number, other_street = split_address(other)
        if other_street == street:
            same_street = True
            if number is not None and other_number is not None:
                return "same_street_other_number"
    return None if same_street else "other_street"


def description_similarity(new: str | None, others: tuple[str, ...]) -> float | None:
    """Return the best token-set similarity (0..1) of the new description with the
    candidate's, or None when either side has none."""
    if not new or not others:
        return None
    return max(fuzz.token_set_ratio(new, other, processor=str.casefold) for other in others) / 100


def pair_features(
    new: NewReport, candidate: Candidate, now: datetime
) -> tuple[list[float], dict[str, Any]]:
    """Return the pair's feature values (in FEATURES order) and its raw signals (metres,
    hours, bits: what is stored with the report)."""
    d = candidate.distance_m
    values = [1.0 if d <= near else 0.0 for near in _NEAR_M]
    values.append(math.log1p(d) / _LOG_1KM)

    same_asset: bool | None = None
    if new.asset_id is not None and candidate.asset_id is not None:
        same_asset = new.asset_id == candidate.asset_id
    values += [1.0 if same_asset else 0.0, 1.0 if same_asset is False else 0.0]

    agreement = address_agreement(new.address, candidate.addresses)
    values += [
        1.0 if agreement == "same" else 0.0,
        1.0 if agreement == "same_street_other_number" else 0.0,
        1.0 if agreement == "other_street" else 0.0,
    ]

    age_h = quiet_hours(candidate, now)
    values += [1.0 if age_h <= quiet else 0.0 for quiet in _QUIET_H]
    values.append(math.log1p(age_h) / _LOG_90D)
    closed = candidate.closed
    values.append(1.0 if closed else 0.0)

    photo_bits: int | None = None
    if new.photo_hash and candidate.photo_hashes:
        photo_bits = min(hamming(new.photo_hash, h) for h in candidate.photo_hashes)
    values += [
        1.0 if photo_bits is not None and photo_bits <= PHOTO_SIMILAR_BITS else 0.0,
        1.0 if photo_bits is not None and photo_bits >= PHOTO_DIFFERENT_BITS else 0.0,
    ]

    similarity = description_similarity(new.description, candidate.descriptions)
    values += [
        1.0 if similarity is not None and similarity >= DESCRIPTION_ALIKE else 0.0,
        1.0 if similarity is not None and similarity < DESCRIPTION_ALIKE else 0.0,
    ]
    same_category = new.category_code == candidate.category_code
    values.append(0.0 if same_category else 1.0)

    signals: dict[str, Any] = {
        "distance_m": round(d, 2),
        "same_asset": same_asset,
        "address": agreement,
        "same_address": None if agreement is None else agreement == "same",
        "age_h": round(age_h, 2),
        "closed": closed,
        "photo_bits": photo_bits,
        "description_similarity": None if similarity is None else round(similarity, 3),
        "same_category": same_category,
    }
    return values, signals
