"""The lifecycle table, without a database: every move it allows, and every one it refuses."""

from __future__ import annotations

import itertools

import pytest

from work_orders import lifecycle
from work_orders.lifecycle import (
    STATUSES,
    TRANSITIONS,
    EntityKind,
    IllegalTransition,
    Move,
    Status,
    check,
    plan,
)

PAIRS = list(itertools.product(STATUSES, STATUSES))
ILLEGAL = [(a, b) for a, b in PAIRS if b not in TRANSITIONS[a]]
LEGAL = [(a, b) for a, b in PAIRS if b in TRANSITIONS[a]]


def test_the_table_covers_every_status_and_names_only_statuses() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    for targets in TRANSITIONS.values():
        assert targets <= set(STATUSES)


@pytest.mark.parametrize(("current", "to"), ILLEGAL)
def test_every_illegal_transition_is_refused_with_the_allowed_ones_named(
    current: Status, to: Status
) -> None:
    kinds: tuple[EntityKind, ...] = ("incident", "work_order")
    for kind in kinds:
        with pytest.raises(IllegalTransition) as caught:
            check(kind, current, to)
        assert caught.value.allowed == tuple(sorted(TRANSITIONS[current]))
        for allowed in caught.value.allowed:
            assert allowed in caught.value.message


@pytest.mark.parametrize(("current", "to"), LEGAL)
def test_every_legal_transition_is_a_move(current: Status, to: Status) -> None:
    assert check("work_order", current, to) == Move("work_order", current, to)


def test_an_unknown_status_is_refused_and_named() -> None:
    with pytest.raises(IllegalTransition, match="'done' is not a status"):
        check("incident", "new", "done")
    with pytest.raises(IllegalTransition):
        check("incident", "bogus", "triaged")


def test_finished_work_can_only_be_reopened_or_closed() -> None:
    assert TRANSITIONS["closed"] == {"reopened"}
    assert TRANSITIONS["cancelled"] == {"reopened"}
    assert TRANSITIONS["completed"] == {"closed", "reopened"}


def test_cancel_works_from_every_open_status_and_reopen_from_every_finished_one() -> None:
    # What dedup relies on: cancelling an incident merged into another, reopening a closed one.
    for status in lifecycle.OPEN:
        assert "cancelled" in TRANSITIONS[status]
    for status in lifecycle.FINISHED:
        assert "reopened" in TRANSITIONS[status]


def test_the_counterpart_follows_and_a_completed_incident_closes() -> None:
    moves = plan("work_order", "in_progress", "completed", counterpart="in_progress")
    assert moves == [
        Move("work_order", "in_progress", "completed"),
        Move("incident", "in_progress", "completed"),
        Move("incident", "completed", "closed"),
    ]


def test_reopening_a_closed_incident_reopens_its_completed_work_order() -> None:
    assert plan("incident", "closed", "reopened", counterpart="completed") == [
        Move("incident", "closed", "reopened"),
        Move("work_order", "completed", "reopened"),
    ]


def test_a_counterpart_already_there_does_not_move() -> None:
    assert plan("work_order", "completed", "closed", counterpart="closed") == [
        Move("work_order", "completed", "closed")
    ]


def test_a_counterpart_that_cannot_follow_makes_the_move_illegal() -> None:
    with pytest.raises(IllegalTransition) as caught:
        plan("work_order", "assigned", "scheduled", counterpart="closed")
    assert caught.value.kind == "incident"


def test_resume_goes_back_to_where_it_was_held_from() -> None:
    assert lifecycle.resume_target("scheduled") == "scheduled"
    assert lifecycle.resume_target("in_progress") == "in_progress"
    assert lifecycle.resume_target(None) == "triaged"
    assert lifecycle.resume_target("closed") == "triaged"
