"""Define a whole service category in one step: what work orders keep about it (name, group,
asset type, SLA and calendar, the dedup rule), what dispatch keeps (time on site, skills) and
what Open311 keeps (the service definition's questions).

One spec, one shape, for ``geo311 categories load FILE`` (YAML or JSON) and the admin API. The
whole batch is checked before anything is written, and every problem is named at once; the
caller commits once, so a refused file stores nothing. Loading the same file again changes
nothing (an upsert by code).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy.orm import Session

from dispatch import service as dispatch_service
from dispatch.schemas import ServiceTimeIn
from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from geo311.resident.open311 import service as open311_service
from geo311.resident.open311.attributes import DATATYPES, AttributeDefinition, Choice
from work_orders import categories as category_service
from work_orders.models import ServiceCategory

Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]


class DedupIn(BaseModel):
    """The category's duplicate rule; a value left out takes the service's default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    radius_m: float = Field(default=50.0, ge=0, le=5000)
    threshold: float | None = Field(default=None, ge=0, le=1)
    open_window_h: float | None = Field(default=None, gt=0)
    reopen_window_h: float | None = Field(default=None, ge=0)


class ChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    name: str = Field(min_length=1)


class AttributeIn(BaseModel):
    """One question of the Open311 service definition."""

    model_config = ConfigDict(extra="forbid")

    code: Code
    datatype: str = Field(description="One of " + ", ".join(DATATYPES))
    description: str = Field(min_length=1)
    order: int = Field(ge=1)
    required: bool = False
    variable: bool = True
    datatype_description: str | None = None
    choices: list[ChoiceIn] = Field(default_factory=list)


class CategoryBody(BaseModel):
    """Everything about a category but its code. ``service``, ``skills`` and ``attributes``
    left out (null) keep what is stored; given, they replace it (``[]`` clears)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    group: Code
    sla_hours: float = Field(gt=0, le=24 * 366)
    description: str = ""
    asset_type: Code | None = None
    calendar: Code | None = Field(
        default=None, description="Business calendar the SLA counts in; null: round the clock"
    )
    snap_radius_m: float = Field(default=30.0, ge=0, le=1000)
    active: bool = True
    dedup: DedupIn = Field(default_factory=DedupIn)
    service: ServiceTimeIn | None = None
    skills: list[Code] | None = None
    attributes: list[AttributeIn] | None = None


class CategorySpec(CategoryBody):
    code: Code


class CategoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[CategorySpec]


@dataclass
class LoadResult:
    """Codes created, changed and left as they were (already as the file says)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


# --- reading a file ------------------------------------------------------------------------


def read_file(path: Path) -> list[CategorySpec]:
    """Return the categories in a YAML or JSON file (``categories: [...]`` or a bare list).

    Raises ValidationFailed naming every bad field (``categories.2.sla_hours``), or the file
    that cannot be read or parsed.
    """
    try:
        raw_text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValidationFailed(f"{path}: cannot read the file: {exc}") from exc
    try:
        data: Any = (
            json.loads(raw_text) if path.suffix.lower() == ".json" else yaml.safe_load(raw_text)
        )
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"{path}: not valid {_kind(path)}: {exc}") from exc
    if isinstance(data, list):
        data = {"categories": data}
    try:
        return CategoryFile.model_validate(data).categories
    except ValidationError as exc:
        errors = [
            FieldError(".".join(str(p) for p in e["loc"]), e["msg"], e["type"])
            for e in exc.errors()
        ]
        raise ValidationFailed(
            f"{path}: {len(errors)} problem(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
        ) from exc


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


# --- checking and writing --------------------------------------------------------------------


def _fields(spec: CategoryBody) -> category_service.CategoryFields:
    return category_service.CategoryFields(
        name=spec.name,
        group_code=spec.group,
        sla_hours=spec.sla_hours,
        description=spec.description,
        asset_type=spec.asset_type,
        calendar_code=spec.calendar,
        snap_radius_m=spec.snap_radius_m,
        active=spec.active,
        dedup_enabled=spec.dedup.enabled,
        dedup_radius_m=spec.dedup.radius_m,
        dedup_threshold=spec.dedup.threshold,
        dedup_open_window_h=spec.dedup.open_window_h,
        dedup_reopen_window_h=spec.dedup.reopen_window_h,
    )


def _definitions(
    attributes: Sequence[AttributeIn], prefix: str, errors: list[FieldError]
) -> list[AttributeDefinition]:
    out: list[AttributeDefinition] = []
    codes = [a.code for a in attributes]
    for k, a in enumerate(attributes):
        if codes.index(a.code) != k:
            errors.append(
                FieldError(f"{prefix}attributes.{k}.code", f"{a.code!r} is given twice", "repeated")
            )
            continue
        try:
            out.append(
                AttributeDefinition(
                    code=a.code,
                    datatype=a.datatype,
                    description=a.description,
                    order=a.order,
                    required=a.required,
                    variable=a.variable,
                    datatype_description=a.datatype_description,
                    choices=tuple(Choice(key=c.key, name=c.name) for c in a.choices),
                )
            )
        except ValueError as exc:
            errors.append(FieldError(f"{prefix}attributes.{k}", str(exc), "invalid"))
    return out


def load_categories(
    session: Session, *, jurisdiction_id: int, specs: Sequence[CategorySpec]
) -> LoadResult:
    """Create or update each category of ``specs`` across the domains; return what changed.

    Checks the whole batch first and raises ValidationFailed naming every problem (fields as
    ``categories.<n>.<field>``) before writing anything. Flushes; the caller commits.
    """
    errors: list[FieldError] = []
    definitions: list[list[AttributeDefinition] | None] = []
    seen: set[str] = set()
    for n, spec in enumerate(specs):
        prefix = f"categories.{n}." if len(specs) > 1 or n else ""
        if spec.code in seen:
            errors.append(FieldError(f"{prefix}code", f"{spec.code!r} is given twice", "repeated"))
        seen.add(spec.code)
        errors += category_service.check_category(
            session, jurisdiction_id=jurisdiction_id, fields=_fields(spec), prefix=prefix
        )
        if spec.skills:
            for code in dispatch_service.unknown_skills(
                session, jurisdiction_id=jurisdiction_id, codes=spec.skills
            ):
                errors.append(
                    FieldError(
                        f"{prefix}skills",
                        f"there is no skill {code!r} (define it first: PUT /api/v1/skills/…)",
                        "unknown",
                    )
                )
        if spec.attributes is not None and spec.attributes and not spec.active:
            errors.append(
                FieldError(
                    f"{prefix}attributes",
                    "an inactive category has no Open311 service definition",
                    "inactive",
                )
            )
        definitions.append(
            None if spec.attributes is None else _definitions(spec.attributes, prefix, errors)
        )
    if errors:
        raise ValidationFailed(
            f"{len(errors)} problem(s), nothing stored: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
        )

    result = LoadResult()
    for spec, defs in zip(specs, definitions, strict=True):
        before = _snapshot(session, jurisdiction_id, spec.code)
        _, created = category_service.put_category(
            session, jurisdiction_id=jurisdiction_id, code=spec.code, fields=_fields(spec)
        )
        if spec.service is not None:
            access = (
                (spec.service.access_start, spec.service.access_end)
                if spec.service.access_start is not None and spec.service.access_end is not None
                else None
            )
            dispatch_service.put_service_time(
                session,
                jurisdiction_id=jurisdiction_id,
                category_code=spec.code,
                service_s=spec.service.service_s,
                access=access,
                demand=spec.service.demand,
            )
        if spec.skills is not None:
            dispatch_service.set_category_skills(
                session,
                jurisdiction_id=jurisdiction_id,
                category_code=spec.code,
                skills=spec.skills,
            )
        if defs is not None and spec.active:
            open311_service.set_attributes(
                session, jurisdiction_id=jurisdiction_id, category_code=spec.code, definitions=defs
            )
        if created:
            result.created.append(spec.code)
        elif _snapshot(session, jurisdiction_id, spec.code) != before:
            result.updated.append(spec.code)
        else:
            result.unchanged.append(spec.code)
    return result


def _snapshot(session: Session, jurisdiction_id: int, code: str) -> CategorySpec | None:
    try:
        return describe_category(session, jurisdiction_id=jurisdiction_id, code=code)
    except NotFound:
        return None


# --- reading back ------------------------------------------------------------------------------


def describe_category(session: Session, *, jurisdiction_id: int, code: str) -> CategorySpec:
    """Return the category ``code`` as a spec (what ``load_categories`` takes); NotFound."""
    category = session.get(ServiceCategory, (jurisdiction_id, code))
    if category is None:
        raise NotFound(f"There is no service category {code!r}.")
    fields = category_service.fields_of(category)
    service = dispatch_service.get_service_time(
        session, jurisdiction_id=jurisdiction_id, category_code=code
    )
    attributes = open311_service.attribute_definitions(
        session, jurisdiction_id=jurisdiction_id, category_code=code
    )
    return CategorySpec(
        code=code,
        name=fields.name,
        group=fields.group_code,
        sla_hours=fields.sla_hours,
        description=fields.description,
        asset_type=fields.asset_type,
        calendar=fields.calendar_code,
        snap_radius_m=fields.snap_radius_m,
        active=fields.active,
        dedup=DedupIn(
            enabled=fields.dedup_enabled,
            radius_m=fields.dedup_radius_m,
            threshold=fields.dedup_threshold,
            open_window_h=fields.dedup_open_window_h,
            reopen_window_h=fields.dedup_reopen_window_h,
        ),
        service=None
        if service is None
        else ServiceTimeIn(
            service_s=service.service_s,
            demand=service.demand,
            access_start=service.access_start,
            access_end=service.access_end,
        ),
        skills=dispatch_service.category_skills(
            session, jurisdiction_id=jurisdiction_id, category_code=code
        ),
        attributes=[
            AttributeIn(
                code=a.code,
                datatype=a.datatype,
                description=a.description,
                order=a.order,
                required=a.required,
                variable=a.variable,
                datatype_description=a.datatype_description,
                choices=[ChoiceIn(key=c.key, name=c.name) for c in a.choices],
            )
            for a in attributes
        ],
    )


def list_category_specs(session: Session, *, jurisdiction_id: int) -> list[CategorySpec]:
    """Return every category of the jurisdiction (inactive ones too) as specs, by code."""
    return [
        describe_category(session, jurisdiction_id=jurisdiction_id, code=c.code)
        for c in category_service.all_categories(session, jurisdiction_id=jurisdiction_id)
    ]
