"""The words residents are told about a change, chosen on purpose. Pure, no I/O.

Staff write reasons in their own words (a crew's completion note, a dispatcher's merge reason,
a rule's code such as ``no_skill``); those stay in the audit trail's ``reason``. What the
public sees — Open311 ``status_notes`` and ``servicerequestupdates`` — is an event's
``public_note``: one of the wordings below, filled in with public values only (a resolution
code, a request's tracking id), never with a staff reason.

The English text is stored with the event (Open311 speaks English); the key and values are
kept in the event's data, so a view in a resident's own language can word it again with
``PublicNote.text(language)`` (the resolution words are the notices' own, in
``geo311.kernel.notify.templates``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from geo311.kernel.notify.templates import DEFAULT_LANGUAGE, language_of, resolution_label

WORDINGS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "resolved": "Resolved: {resolution}.",
        "reopened_not_fixed": "Reopened: a resident reported that the problem is not fixed.",
        "reopened_reported_again": "Reopened: the problem was reported again.",
        "merged": "This problem was already reported as {parent}: follow that request.",
        "merge_undone": "No longer linked to another request: this one is followed on its own.",
        "reports_separated": "Reports of a different problem were separated from this request.",
        "split_off": "Separated from request {parent}: handled as a problem of its own.",
        "reclosed": "Closed again: the report that reopened it was about a different problem.",
        "report_back": "Reopened: a report of this problem was linked to it again.",
        "merged_back": "Linked to request {parent} again: follow that request.",
        "photo_added": "A resident added a photo.",
    },
    "es": {
        "resolved": "Resuelto: {resolution}.",
        "reopened_not_fixed": "Reabierto: un vecino informó que el problema no está resuelto.",
        "reopened_reported_again": "Reabierto: el problema se volvió a reportar.",
        "merged": "Este problema ya se había reportado como {parent}: siga esa solicitud.",
        "merge_undone": "Ya no está unida a otra solicitud: se sigue por separado.",
        "reports_separated": "Se separaron de esta solicitud reportes de otro problema.",
        "split_off": "Separada de la solicitud {parent}: se atiende como un problema aparte.",
        "reclosed": "Cerrada de nuevo: el reporte que la reabrió trataba de otro problema.",
        "report_back": "Reabierta: se le volvió a unir un reporte de este problema.",
        "merged_back": "Unida de nuevo a la solicitud {parent}: siga esa solicitud.",
        "photo_added": "Un vecino añadió una foto.",
    },
}
KEYS: Final = frozenset(WORDINGS[DEFAULT_LANGUAGE])


@dataclass(frozen=True)
class PublicNote:
    """A wording (``key`` of ``WORDINGS``) and its public values, e.g.
    ``PublicNote("resolved", {"resolution_code": "repaired"})``."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key not in KEYS:
            raise ValueError(f"no public wording {self.key!r}")

    def text(self, language: str = DEFAULT_LANGUAGE) -> str:
        """Return the note in ``language`` (English when the catalogue lacks it)."""
        lang = language_of(language)
        template = WORDINGS.get(lang, {}).get(self.key) or WORDINGS[DEFAULT_LANGUAGE][self.key]
        values: dict[str, Any] = dict(self.values)
        if self.key == "resolved":
            values["resolution"] = resolution_label(lang, self.values.get("resolution_code"))
        return template.format(**values)

    def as_data(self) -> dict[str, Any]:
        """Return what the audit event keeps to word the note again in another language."""
        return {"key": self.key, **self.values}
