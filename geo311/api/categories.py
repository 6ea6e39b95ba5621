"""The admin's category routes: the whole category (work orders, dispatch and Open311 parts)
read and written as one document, the shape ``geo311 categories load`` reads from a file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from geo311.flows import categories as category_flow
from geo311.flows.categories import CategoryBody, CategorySpec, Code
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import SessionDep, require_roles
from layers.deps import JurisdictionDep

router = APIRouter(prefix="/api/v1/admin/categories", tags=["categories"])

Admin = Annotated[Principal, Depends(require_roles("admin"))]


@router.get(
    "",
    response_model=list[CategorySpec],
    summary="Every category (inactive ones too), with what each domain keeps about it",
)
def list_categories(
    session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> list[CategorySpec]:
    return category_flow.list_category_specs(session, jurisdiction_id=jurisdiction.id)


@router.get("/{code}", response_model=CategorySpec, summary="One category, whole")
def get_category(
    code: Code, session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> CategorySpec:
    return category_flow.describe_category(session, jurisdiction_id=jurisdiction.id, code=code)


@router.put(
    "/{code}",
    response_model=CategorySpec,
    summary="Create or update a category (service, skills and attributes left out: unchanged)",
    responses={201: {"description": "Created"}, 200: {"description": "Updated or unchanged"}},
)
def put_category(
    code: Code,
    body: CategoryBody,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Admin,
) -> CategorySpec:
    spec = CategorySpec(code=code, **body.model_dump())
    result = category_flow.load_categories(session, jurisdiction_id=jurisdiction.id, specs=[spec])
    session.commit()
    if result.created:
        response.status_code = 201
    return category_flow.describe_category(session, jurisdiction_id=jurisdiction.id, code=code)
