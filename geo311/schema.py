"""The whole schema: every package's models, for Alembic and the schema test.

Like the app factory and the CLI, this shell module may know every package.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from geo311.database import Base


def load_all_models() -> MetaData:
    """Return the metadata with every package's models imported."""
    import dispatch.models  # noqa: F401
    import geo311.auth.models
    import geo311.intake.models  # noqa: F401
    import layers.models  # noqa: F401
    import work_orders.models  # noqa: F401

    return Base.metadata
