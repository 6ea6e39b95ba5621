"""What dedup stores beside the incidents: the staff moves (merge, split) that can be undone,
and the indexes that make the candidate search index-backed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base
from work_orders.models import Incident

MOVE_KINDS = ("merge", "split")

# The radius search uses ix_incidents_geom_closed (work_orders.models): a degree box around
# the point (grid.degree_box) and the closing time are index conditions on it, ST_DWithin on
# geography keeps what is within the radius in real metres. A multi-column gist led by
# (jurisdiction, category) was tried first: slower to answer, and an extra cost on every insert.
# "Two reports of streetlight #4411 are one problem whatever the distance."
Index(
    "ix_incidents_asset",
    Incident.jurisdiction_id,
    Incident.asset_id,
    postgresql_where=text("asset_id IS NOT NULL"),
)


class IncidentMove(Base):
    """A dispatcher's merge (incident B into A) or split (a report out into a new incident).

    It keeps what the undo needs: the reports moved, the subscriptions moved, and the statuses
    the incidents had before.
    """

    __tablename__ = "incident_moves"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "from_incident_id"], ["incidents.jurisdiction_id", "incidents.id"]
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "to_incident_id"], ["incidents.jurisdiction_id", "incidents.id"]
        ),
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in MOVE_KINDS) + ")", name="kind_known"
        ),
        Index("ix_incident_moves_from", "jurisdiction_id", "from_incident_id"),
        Index("ix_incident_moves_to", "jurisdiction_id", "to_incident_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_incident_id: Mapped[int] = mapped_column(BigInteger)
    to_incident_id: Mapped[int] = mapped_column(BigInteger)
    report_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by: Mapped[str | None] = mapped_column(Text)
    undo_reason: Mapped[str | None] = mapped_column(Text)


class DedupModel(Base):
    """A category's fitted duplicate model, stored as plain parameters (learning.PairModel):
    the feature names, their coefficients, the intercept and the decision threshold, with the
    candidate radius and windows it was fitted for and its scores on the later part."""

    __tablename__ = "dedup_models"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    fitted_by: Mapped[str] = mapped_column(Text)
