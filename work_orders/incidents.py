"""Opening incidents: the terms a category's work opens on, a new incident with its work
order (and the crew the assignment rules chose), who follows it, and the work orders that
bulk-loaded incidents lack. Plain functions, session first; they flush, the caller commits.

The rows themselves are built by ``work_orders.opening`` (pure code shared with the importer,
the bench and test support); this module reads what they need and writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    ScalarSelect,
    Select,
    String,
    and_,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from geo311.kernel.notify import outbox
from geo311.kernel.notify.models import WebhookEndpoint
from layers.models import Jurisdiction
from work_orders import changes, notices, opening, sla
from work_orders.categories import category_calendar
from work_orders.models import (
    AuditEvent,
    BusinessCalendar,
    Incident,
    Requester,
    ServiceCategory,
    Subscription,
)


@dataclass(frozen=True)
class CategoryTerms:
    """A category, the terms its work opens on, and its jurisdiction (kept referenced, so
    the notices' wording finds it in the session without reading it again)."""

    category: ServiceCategory
    terms: opening.Terms
    jurisdiction: Jurisdiction
    # (id, url) of the webhook endpoints told when work is received, by id.
    received_webhooks: tuple[tuple[int, str], ...] = ()
    # The values of the caller's ``also`` columns, in order.
    also: tuple[Any, ...] = ()


def category_terms(
    session: Session,
    *,
    jurisdiction_id: int,
    code: str,
    also: Sequence[ColumnElement[Any]] = (),
) -> CategoryTerms | None:
    """Return the active category ``code`` with the terms its work opens on (its SLA in its
    business calendar) and its jurisdiction, read in one statement; None if there is no such
    active category.

    ``also``: scalar subqueries of the caller's own (what another domain keeps about the
    category, e.g. dedup's fitted model), read in the same statement so intake pays no extra
    round trip for them."""
    row = session.execute(
        category_terms_select(jurisdiction_id=jurisdiction_id, code=code, also=also)
    ).one_or_none()
    return category_terms_of(row)


def category_terms_select(
    *,
    jurisdiction_id: int | ColumnElement[Any],
    code: str | ColumnElement[Any],
    also: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:
    """Return the statement :func:`category_terms` runs; ``jurisdiction_id`` and ``code`` may
    be bound parameters, for a caller that builds the statement once and runs it often
    (intake). Read its row with :func:`category_terms_of`."""
    hooks = received_webhooks_column(jurisdiction_id=jurisdiction_id)
    return of_category(
        select(ServiceCategory, BusinessCalendar, Jurisdiction, hooks.label("hooks"), *also),
        jurisdiction_id=jurisdiction_id,
        code=code,
    )


def of_category(
    query: Select[Any],
    *,
    jurisdiction_id: int | ColumnElement[Any],
    code: str | ColumnElement[Any],
) -> Select[Any]:
    """Return ``query`` (of category, calendar and jurisdiction columns) read from the
    category ``code`` with its business calendar (if any) and its jurisdiction."""
    return (
        query.select_from(ServiceCategory)
        .join(Jurisdiction, Jurisdiction.id == ServiceCategory.jurisdiction_id)
        .outerjoin(
            BusinessCalendar,
            and_(
                BusinessCalendar.jurisdiction_id == ServiceCategory.jurisdiction_id,
                BusinessCalendar.code == ServiceCategory.calendar_code,
            ),
        )
        .where(ServiceCategory.jurisdiction_id == jurisdiction_id, ServiceCategory.code == code)
    )


def received_webhooks_column(*, jurisdiction_id: int | ColumnElement[Any]) -> ScalarSelect[Any]:
    """Return a scalar subquery: the JSON arrays [id, url] of the jurisdiction's active
    webhook endpoints told when work is received, by id (NULL: none); read them with
    :func:`received_webhooks_of`."""
    return (
        select(
            func.array_agg(
                aggregate_order_by(
                    func.json_build_array(WebhookEndpoint.id, WebhookEndpoint.url),
                    WebhookEndpoint.id,
                )
            )
        )
        .where(
            # The parameter, not the outer row: Citus routes a statement to one shard only
            # when every distributed table in it is filtered by the same tenant value.
            WebhookEndpoint.jurisdiction_id == jurisdiction_id,
            WebhookEndpoint.active,
            literal("received", String(16)) == func.any(WebhookEndpoint.kinds),
        )
        .scalar_subquery()
    )


def received_webhooks_of(found: Sequence[Sequence[Any]] | None) -> tuple[tuple[int, str], ...]:
    """Return (id, url) of each endpoint :func:`received_webhooks_column` read."""
    return tuple((int(h[0]), str(h[1])) for h in found or ())


def category_terms_of(row: Row[Any] | None) -> CategoryTerms | None:
    """Return the terms read by :func:`category_terms_select` (None: no active category)."""
    values: tuple[Any, ...] = () if row is None else tuple(row)
    if not values or not values[0].active:
        return None
    category, calendar, jurisdiction, hooks_found = values[:4]
    parsed = (
        None
        if calendar is None
        else sla.parse_calendar(
            timezone=calendar.timezone, hours=calendar.hours, holidays=calendar.holidays
        )
    )
    return CategoryTerms(
        category,
        opening.Terms.of(category, parsed),
        jurisdiction,
        received_webhooks_of(hooks_found),
        values[4:],
    )


def open_incident(
    session: Session,
    *,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
    terms: opening.Terms | None = None,
    ward_code: str | None = None,
    asset_type: str | None = None,
    choose: opening.CrewChooser | None = None,
    opened_by: tuple[str, dict[str, Any]] | None = None,
    received_webhooks: Sequence[tuple[int, str]] | None = None,
) -> Incident:
    """Return a new incident for a problem nobody reported before, with its work order in the
    category's queue, due by the category's SLA (in its business calendar if it has one).

    - ``terms``: the category's terms when the caller read them already (else read here).
    - ``choose``: the assignment rules, given by a use case that knows dispatch
      (``geo311.flows``): the work order is then written already ``assigned`` to the crew
      they chose, with the audit trail a transition to ``assigned`` writes; without one, or
      when it finds no crew, the work order opens ``new`` on no crew.
      ``ward_code`` and ``asset_type`` (the snapped asset's type, else the category's) are
      what the rules look at.
    - ``opened_by``: (actor, data) of the incident's own "opened" event, when the caller has
      it before the incident exists (intake has the report's tracking id); else the caller
      records it.
    - ``received_webhooks``: the endpoints told of new work, when read already
      (``category_terms``); else read here.
    """
    if terms is None:
        calendar = category_calendar(
            session, jurisdiction_id=category.jurisdiction_id, category_code=category.code
        )
        terms = opening.Terms.of(category, calendar)
    times = terms.due_times(opened_at)
    crew = None
    if choose is not None:
        crew = choose(
            session,
            opening.NewWork(
                jurisdiction_id=category.jurisdiction_id,
                category_code=category.code,
                asset_type=asset_type if asset_type is not None else category.asset_type,
                ward_code=ward_code,
                due_at=times.due_at,
                opened_at=opened_at,
            ),
        )
    incident = opening.incident_row(
        terms,
        lon=lon,
        lat=lat,
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=opened_at,
        times=times,
        crew=crew,
    )
    session.add(incident)
    session.flush()
    work_order = opening.work_order_row(
        terms, incident_id=incident.id, opened_at=opened_at, times=times, crew=crew
    )
    session.add(work_order)
    session.flush()
    # One statement (one multi-row VALUES) for the whole opening's trail.
    session.execute(
        insert(AuditEvent).values(
            opening.opening_audit(
                incident=incident, work_order=work_order, crew=crew, opened_by=opened_by
            )
        )
    )
    changes.note(
        session, jurisdiction_id=incident.jurisdiction_id, entity="incident",
        entity_ids=[incident.id],
    )  # fmt: skip
    notices.owe_webhooks(
        session,
        incident=incident,
        kind="received",
        key=f"received:incident-{incident.id}",
        context=notices.incident_context(session, incident),
        endpoints=received_webhooks,
    )
    return incident


def subscribe(
    session: Session,
    *,
    jurisdiction_id: int,
    incident_id: int,
    requester_id: int,
    report_id: int | None,
    new_requester: Requester | None = None,
    tracking_id: str | None = None,
) -> None:
    """Subscribe a requester to an incident's updates (once, however often they report it),
    and owe them the "we received your report" notice unless they muted it.

    ``new_requester``: the requester, when it was created in this transaction with the
    report ``tracking_id``: it cannot have muted anything yet, so its contact is not read
    back."""
    subscribed = session.execute(
        pg_insert(Subscription)
        .values(
            jurisdiction_id=jurisdiction_id,
            incident_id=incident_id,
            requester_id=requester_id,
            report_id=report_id,
        )
        .on_conflict_do_nothing(index_elements=["jurisdiction_id", "incident_id", "requester_id"])
        .returning(Subscription.id)
    ).scalar_one_or_none()
    if subscribed is None:
        return
    incident = session.get(Incident, (jurisdiction_id, incident_id))
    if incident is None:
        return
    context = notices.incident_context(session, incident)
    if new_requester is None or tracking_id is None:
        notices.owe_requester_notices(
            session,
            incident=incident,
            kind="received",
            event_key="subscribed",
            context=context,
            requester_id=requester_id,
        )
        return
    recipient = new_requester.email or new_requester.phone
    if recipient is None:
        return
    outbox.owe(
        session,
        [
            notices.requester_notice(
                jurisdiction_id=incident.jurisdiction_id,
                incident_id=incident.id,
                kind="received",
                event_key="subscribed",
                requester_id=requester_id,
                email=new_requester.email,
                phone=new_requester.phone,
                language=new_requester.language,
                context={**context, "tracking_id": tracking_id},
            )
        ],
    )


def create_missing_work_orders(session: Session, *, jurisdiction_id: int) -> int:
    """Return how many work orders were created for incidents that had none (bulk-loaded
    ones), each in step with its incident: a closed incident's work order is completed.

    Due and at-risk times are the opening rows' (``work_orders.opening``), in the category's
    business calendar, as for a report that came in through intake at the same instant; an
    incident that is due already keeps its due time. The incidents are noted for the
    planner's summaries, as every other write of the lifecycle notes them."""
    lacking = session.execute(
        text(
            "SELECT i.id, i.category_code, i.status, i.opened_at, i.due_at, i.closed_at, "
            "i.updated_at FROM incidents i WHERE i.jurisdiction_id = :jid "
            "AND NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.jurisdiction_id = :jid "
            "AND w.incident_id = i.id) ORDER BY i.id"
        ),
        {"jid": jurisdiction_id},
    ).all()
    if not lacking:
        return 0
    terms = _terms_of(session, jurisdiction_id, {r.category_code for r in lacking})
    rows = []
    for r in lacking:
        done_at = r.closed_at or r.updated_at
        rows.append(
            {
                **opening.work_order_values(
                    terms[r.category_code],
                    incident_id=r.id,
                    opened_at=r.opened_at,
                    times=terms[r.category_code].times_until(r.opened_at, r.due_at),
                    crew=None,
                ),
                "status": "completed" if r.status == "closed" else r.status,
                "resolved_at": done_at
                if r.status in ("completed", "closed", "cancelled")
                else None,
                "completed_at": done_at if r.status in ("completed", "closed") else None,
            }
        )
    columns = (
        "incident_id",
        "status",
        "department",
        "opened_at",
        "due_at",
        "at_risk_at",
        "resolved_at",
        "completed_at",
    )
    types = (
        "bigint",
        "text",
        "text",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "timestamptz",
    )
    session.execute(
        text(
            f"INSERT INTO work_orders (jurisdiction_id, {', '.join(columns)}) "  # noqa: S608
            f"SELECT :jid, u.* FROM unnest("
            + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(columns, types, strict=True))
            + ") AS u"
        ),
        {"jid": jurisdiction_id, **{c: [row[c] for row in rows] for c in columns}},
    )
    changes.note_many(
        session, jurisdiction_id=jurisdiction_id, entities={"incident": [r.id for r in lacking]}
    )
    return len(rows)


def _terms_of(session: Session, jurisdiction_id: int, codes: set[str]) -> dict[str, opening.Terms]:
    """Return the opening terms of the categories (active or not), in their calendars."""
    found = session.execute(
        select(ServiceCategory, BusinessCalendar)
        .outerjoin(
            BusinessCalendar,
            and_(
                BusinessCalendar.jurisdiction_id == ServiceCategory.jurisdiction_id,
                BusinessCalendar.code == ServiceCategory.calendar_code,
            ),
        )
        .where(ServiceCategory.jurisdiction_id == jurisdiction_id, ServiceCategory.code.in_(codes))
    ).all()
    return {
        category.code: opening.Terms.of(
            category,
            None
            if calendar is None
            else sla.parse_calendar(
                timezone=calendar.timezone, hours=calendar.hours, holidays=calendar.holidays
            ),
        )
        for category, calendar in found
    }
