"""The whole schema: every package's models, for Alembic and the schema test.

Like the app factory and the CLI, this shell module may know every package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from geoalchemy2 import alembic_helpers
from sqlalchemy import MetaData

from geo311.kernel.database import Base


def load_all_models() -> MetaData:
    """Return the metadata with every package's models imported."""
    import dispatch.models  # noqa: F401
    import geo311.kernel.auth.models
    import geo311.kernel.idempotency
    import geo311.kernel.media.models
    import geo311.kernel.notify.models
    import geo311.resident.dedup.models
    import geo311.resident.intake.models
    import geo311.resident.open311.models  # noqa: F401
    import layers.models  # noqa: F401
    import maps.analytics.models  # noqa: F401
    import work_orders.models  # noqa: F401

    return Base.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Return whether Alembic should compare this object with the models.

    The job queue's tables (``procrastinate_*``) come from the queue's own schema, applied by
    a migration, and have no models.
    """
    if type_ == "table" and name is not None and name.startswith("procrastinate_"):
        return False
    return _postgis_include_object(obj, name, type_, reflected, compare_to)


# geoalchemy2's filter (skips PostGIS's own tables) carries no annotations.
_postgis_include_object = cast(Callable[..., bool], alembic_helpers.include_object)
