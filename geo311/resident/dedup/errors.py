"""What a dispatcher can get wrong when merging, splitting or undoing."""

from __future__ import annotations

from geo311.kernel.errors import Conflict, NotFound, ValidationFailed


class IncidentNotFound(NotFound):
    code = "incident_not_found"
    title = "No such incident"


class ReportNotFound(NotFound):
    code = "report_not_found"
    title = "No such report"


class MoveNotFound(NotFound):
    code = "move_not_found"
    title = "No such merge or split"


class SameIncident(ValidationFailed):
    code = "same_incident"
    title = "An incident cannot be merged into itself"


class IncidentNotMergeable(Conflict):
    code = "incident_not_mergeable"
    title = "The incident cannot take part in a merge in its current status"


class NothingToSplit(Conflict):
    code = "nothing_to_split"
    title = "The report is its incident's only report"


class MoveNotUndoable(Conflict):
    code = "move_not_undoable"
    title = "The move cannot be undone any more"
