"""Who may see a resident's contact details (e-mail, phone): one rule for every view.

Dispatchers call or write to the resident about the job, and so does the crew doing it (its
own crew's work only, never every crew's); admins may see everything. Planners work on figures
and maps and never need to reach a person, so every view that carries contact details (a
report's staff view, an incident's notices) hides them from planners, from crews on other work,
and from any role added later until it is named here.
"""

from __future__ import annotations

from geo311.kernel.auth.service import Principal

CONTACT_ROLES: tuple[str, ...] = ("dispatcher", "crew")


def may_see_contact_details(principal: Principal, *, work_crew_id: int | None) -> bool:
    """Return whether this caller may see the e-mail addresses and phone numbers of the
    requesters of work done by crew ``work_crew_id`` (None: no crew, or not known here)."""
    if principal.role == "crew":
        return principal.crew_id is not None and principal.crew_id == work_crew_id
    return principal.role == "admin" or principal.role in CONTACT_ROLES
