"""The FastAPI dependency for the jurisdiction this service answers for."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from geo311.kernel.deps import SessionDep, SettingsDep
from geo311.kernel.errors import NotFound
from layers import service as layers_service
from layers.models import Jurisdiction


def get_jurisdiction(session: SessionDep, settings: SettingsDep) -> Jurisdiction:
    """Return the jurisdiction this service answers for."""
    jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
    if jurisdiction is None:
        raise NotFound(
            f"Jurisdiction {settings.jurisdiction!r} is not loaded yet: load wards first."
        )
    return jurisdiction


JurisdictionDep = Annotated[Jurisdiction, Depends(get_jurisdiction)]
