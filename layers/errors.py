"""Errors of the layers package: each carries a message a person can act on."""

from __future__ import annotations


class LayersError(Exception):
    """Reference geography could not be read, stored or looked up; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadArgument(LayersError, ValueError):
    """An argument of a layers function is out of range or of the wrong kind."""


class BadLayerFile(LayersError):
    """A layer file is missing, unreadable, or lacks what the caller asked for."""


class BadGeometry(LayersError):
    """A geometry handed to a loader cannot be stored as it is."""


class DuplicateJurisdiction(LayersError):
    """A jurisdiction with this slug exists already."""


class UnknownJurisdiction(LayersError):
    """No jurisdiction has this id or slug."""


class UnknownAssetType(LayersError):
    """The asset type is not defined for the jurisdiction."""


class OverlappingWardMap(LayersError):
    """The new ward map's validity period overlaps a map already stored for the jurisdiction."""


class DuplicateWardMap(LayersError):
    """A ward map with this name exists already for the jurisdiction."""
