"""Who may see a resident's contact details (e-mail, phone): one rule for every view.

Dispatchers and crews call or write to the resident about the job; admins may see
everything. Planners work on figures and maps and never need to reach a person, so every
view that carries contact details (a report's staff view, an incident's notices) hides them
from planners, and from any role added later until it is named here.
"""

from __future__ import annotations

from geo311.auth.service import Principal

CONTACT_ROLES: tuple[str, ...] = ("dispatcher", "crew")


def may_see_contact_details(principal: Principal) -> bool:
    """Return whether this caller may see requesters' e-mail addresses and phone numbers."""
    return principal.role == "admin" or principal.role in CONTACT_ROLES
