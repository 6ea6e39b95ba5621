"""Our incident statuses as Open311 sees them: open or closed, and words for each change."""

from __future__ import annotations

# Every incident status (work_orders.models.INCIDENT_STATUSES): Open311 status and a label.
# Work that is done, called off or handed to another agency is closed for the resident.
_STATUSES: dict[str, tuple[str, str]] = {
    "new": ("open", "Received"),
    "triaged": ("open", "Reviewed"),
    "assigned": ("open", "Assigned to a crew"),
    "scheduled": ("open", "Scheduled"),
    "in_progress": ("open", "Work in progress"),
    "on_hold": ("open", "On hold"),
    "reopened": ("open", "Reopened"),
    "completed": ("closed", "Work completed"),
    "closed": ("closed", "Closed"),
    "cancelled": ("closed", "Cancelled"),
    "transferred": ("closed", "Transferred to another agency"),
}
KNOWN_STATUSES = frozenset(_STATUSES)
CLOSED_STATUSES = tuple(s for s, (o, _) in _STATUSES.items() if o == "closed")


def open311_status(status: str) -> str:
    """Return ``open`` or ``closed`` for an incident status (unknown ones count as open)."""
    return _STATUSES.get(status, ("open", ""))[0]


def status_label(status: str) -> str:
    """Return a resident's words for an incident status."""
    known = _STATUSES.get(status)
    return known[1] if known else status.replace("_", " ").capitalize()


def update_description(action: str, to_state: str | None, public_note: str | None) -> str:
    """Return the public text of an audit event: its public note when one was chosen, else
    words for what happened. Never the staff's ``reason``: that stays in the audit trail."""
    if public_note and public_note.strip():
        return public_note.strip()
    if action == "opened":
        return "Opened"
    if to_state:
        return status_label(to_state)
    return action.replace("_", " ").capitalize()
