"""The lifecycle of incidents and work orders: which status may follow which. Pure, no I/O.

An incident (the problem a resident sees) and its work order (the job a crew does) move
through the same statuses, in step: moving one moves the other to the same status, so the
public status of a report always says where the work is. The one difference: a work order
that is completed leaves its incident completed and then closed (the incident's closure is
what residents are told about); the work order stays ``completed``.

The table below is the whole rule book. Anything not in it is refused with
``IllegalTransition``, which names the statuses that are allowed instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

Status = Literal[
    "new",
    "triaged",
    "assigned",
    "scheduled",
    "in_progress",
    "completed",
    "closed",
    "cancelled",
    "on_hold",
    "transferred",
    "reopened",
]
EntityKind = Literal["incident", "work_order"]

STATUSES: Final[tuple[Status, ...]] = get_args(Status)

# Work that is still to be done (the SLA clock runs, unless on hold).
OPEN: Final[frozenset[Status]] = frozenset(
    {"new", "triaged", "assigned", "scheduled", "in_progress", "on_hold", "transferred", "reopened"}
)
# Nothing more happens unless someone reopens it.
FINISHED: Final[frozenset[Status]] = frozenset({"completed", "closed", "cancelled"})

TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    "new": frozenset({"triaged", "assigned", "on_hold", "transferred", "cancelled"}),
    "triaged": frozenset({"assigned", "on_hold", "transferred", "cancelled"}),
    "assigned": frozenset(
        {"triaged", "scheduled", "in_progress", "completed", "on_hold", "transferred", "cancelled"}
    ),
    # "triaged" from the crew's own statuses: a crew's "can't do" puts the job back in the
    # dispatcher's queue (dispatch.dayplans.commands.cant_do), in one public step.
    "scheduled": frozenset(
        {"triaged", "assigned", "in_progress", "completed", "on_hold", "transferred", "cancelled"}
    ),
    "in_progress": frozenset(
        {"triaged", "scheduled", "completed", "on_hold", "transferred", "cancelled"}
    ),
    # Leaving a hold resumes the work; `resume_target` picks the status it was held from.
    "on_hold": frozenset(
        {"new", "triaged", "assigned", "scheduled", "in_progress", "transferred", "cancelled"}
    ),
    # The receiving department's queue takes it up (or passes it on again).
    "transferred": frozenset({"triaged", "assigned", "on_hold", "transferred", "cancelled"}),
    # Back in the queue; "closed" is for a reopen that turns out to be already fixed.
    "reopened": frozenset(
        {"triaged", "assigned", "scheduled", "on_hold", "transferred", "cancelled", "closed"}
    ),
    "completed": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
    "cancelled": frozenset({"reopened"}),
}

# Moves that must say why.
NEEDS_REASON: Final[frozenset[Status]] = frozenset({"on_hold", "cancelled", "transferred"})
# What a crew may do to its own work; everything else is for dispatchers.
CREW_MOVES: Final[frozenset[Status]] = frozenset({"in_progress", "on_hold", "completed"})

_NAMES: Final[Mapping[EntityKind, str]] = {"incident": "incident", "work_order": "work order"}


class IllegalTransition(Exception):
    """A status change the lifecycle does not allow."""

    def __init__(self, kind: EntityKind, current: str, to: str) -> None:
        self.kind = kind
        self.current = current
        self.to = to
        known = as_status(current)
        self.allowed: tuple[str, ...] = tuple(sorted(TRANSITIONS[known])) if known else ()
        if to not in STATUSES:
            message = f"{to!r} is not a status; the statuses are: {', '.join(STATUSES)}."
        else:
            allowed = ", ".join(self.allowed) or "nothing"
            refusal = (
                f"The {_NAMES[kind]} is already {current!r}"
                if current == to
                else f"A {_NAMES[kind]} that is {current!r} cannot become {to!r}"
            )
            message = f"{refusal}; from {current!r} it can become: {allowed}."
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Move:
    """One status change of one entity."""

    kind: EntityKind
    current: Status
    to: Status


def as_status(value: str) -> Status | None:
    """Return ``value`` as a Status, or None if it is not one of the lifecycle's statuses."""
    return value if value in STATUSES else None


def check(kind: EntityKind, current: str, to: str) -> Move:
    """Return the move ``current`` → ``to`` of a ``kind``, or raise IllegalTransition."""
    known, target = as_status(current), as_status(to)
    if known is None or target is None or target not in TRANSITIONS[known]:
        raise IllegalTransition(kind, current, to)
    return Move(kind, known, target)


def plan(kind: EntityKind, current: str, to: str, *, counterpart: str | None = None) -> list[Move]:
    """Return every move that taking one entity to ``to`` makes, in order.

    ``kind``/``current`` is the entity addressed; ``counterpart`` is the status of the other
    one (the incident's work order, or the work order's incident), None if there is none.
    The counterpart follows to the same status unless it is there already; a counterpart
    that cannot follow makes the whole move illegal. An incident that ends up ``completed``
    is then closed. Raises IllegalTransition naming the entity that cannot move.
    """
    moves = [check(kind, current, to)]
    other: EntityKind = "work_order" if kind == "incident" else "incident"
    if counterpart is not None and counterpart != to:
        moves.append(check(other, counterpart, to))
    incident_after = to if kind == "incident" or counterpart is not None else None
    if incident_after == "completed":
        moves.append(Move("incident", "completed", "closed"))
    return moves


def resume_target(held_from: str | None) -> Status:
    """Return the status a held entity goes back to: the one it was held from."""
    status = as_status(held_from) if held_from is not None else None
    if status is not None and status in TRANSITIONS["on_hold"]:
        return status
    return "triaged"
