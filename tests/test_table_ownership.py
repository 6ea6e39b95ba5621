"""Each table belongs to one package; no other package reads or writes it in raw SQL.

The import-linter layers contract sees imports, not SQL: a string like ``"SELECT … FROM
incidents"`` in dispatch reaches into work_orders' tables without importing anything. This
test maps every table to the package whose models define it, scans every SQL string in every
module, and fails on a table of another package, so a package goes through the owner's query
functions (or ORM models, which the import contract does see) instead.

``EXCEPTIONS`` lists the readers that are not fixed yet, with the tables they read; the test
also fails when one of them no longer reads a listed table, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Table

from geo311.kernel.database import Base
from geo311.schema import load_all_models

ROOT = Path(__file__).resolve().parents[1]
# The packages that own tables, and the others that must not read tables in SQL, longest first
# so that a module goes to its innermost package.
PACKAGES = (
    "geo311.resident",
    "geo311.kernel",
    "geo311.flows",
    "geo311.api",
    "work_orders",
    "dispatch",
    "layers",
    "maps",
)
# The shell knows every package (it builds the schema, loads the demo city); tests are not
# scanned either.
SHELL = ("geo311.app", "geo311.cli", "geo311.schema", "geo311.migrations", "fixtures")

EXCEPTIONS: dict[str, set[str]] = {
    # The day plan's work reader joins work orders, incidents, categories, wards and assets in
    # one statement; the work orders' and layers' query functions could serve it.
    "dispatch.dayplans.work": {
        "assets",
        "audit_events",
        "incidents",
        "service_categories",
        "wards",
        "work_orders",
    },
    # A stored plan read back names each stop's work order and incident.
    "dispatch.dayplans.views": {"incidents", "work_orders"},
    # The importer's bulk statements (placing rows, opening and closing incidents in bulk) go
    # with the row builders shared by intake and the importer.
    "geo311.resident.dedup.importing.place": {"assets", "incidents", "ward_maps", "wards"},
    "geo311.resident.dedup.importing.write": {"incidents"},
    # The candidate search (incidents of the group near the report, their photos' hashes).
    "geo311.resident.dedup.placing": {"incidents", "photos", "service_categories"},
    # Fitting and the record read history in one pass: the incidents the dispatchers' merges
    # and splits touched, and the active categories beside their fitted models.
    "geo311.resident.dedup.learning": {"incidents", "service_categories"},
    # Fitting from geo311's own history labels each stored report by the incident it shares
    # (one window query over reports and incidents).
    "geo311.resident.dedup.history": {"incidents"},
    # Merge, split and undo move reports and subscriptions between incidents and read back the
    # statuses the audit trail kept.
    "geo311.resident.dedup.moves": {"audit_events", "incidents", "photos", "subscriptions"},
    # The report views (public and staff) read the report with its incident, ward, asset,
    # photos and requester in one statement.
    "geo311.resident.intake.service": {"assets", "incidents", "photos", "requesters", "wards"},
    # The notices a change owes name each subscriber's report by its tracking id, and so does
    # the "fixed?" page: reports are above work orders; the subscription could carry the
    # tracking id (a migration).
    "work_orders.notices": {"reports"},
    "work_orders.answers": {"reports"},
    # The planner's analytics are a read model by design: one grouped statement over the
    # history of every domain (counted in PostGIS, never by pulling rows into Python). They
    # only read; a rollup table owned by maps would be the way to narrow this.
    "maps.analytics.hotspots": {
        "audit_events",
        "incidents",
        "reports",
        "service_categories",
        "ward_maps",
        "wards",
    },
    # The summaries are built by the same grouped statements over every domain's history, and
    # the refresh takes in (and deletes) the change rows work_orders.changes lists for it.
    "maps.analytics.rollup": {
        "analytics_changes",
        "audit_events",
        "incidents",
        "jurisdictions",
        "reports",
        "work_orders",
    },
    "maps.analytics.queries": {
        "assets",
        "incidents",
        "reports",
        "ward_maps",
        "wards",
        "work_orders",
    },
}

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


def package_of(module: str) -> str | None:
    """Return the package a module belongs to, or None for the shell and anything else."""
    if module.startswith(SHELL):
        return None
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return None


def owners() -> dict[str, str]:
    """Return each mapped table's owning package."""
    load_all_models()
    found: dict[str, str] = {}
    for mapper in Base.registry.mappers:
        package = package_of(mapper.class_.__module__)
        assert package is not None, f"{mapper.class_.__module__} defines a table outside a package"
        table = mapper.local_table
        assert isinstance(table, Table)
        found[table.name] = package
    return found


def sql_strings(source: str) -> Iterator[str]:
    """Yield every string literal in ``source`` that reads like SQL (f-strings: their text)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if _SQL.search(text):
            yield text


def foreign_tables(module: str, source: str, owner_of: dict[str, str]) -> set[str]:
    """Return the tables of other packages that ``module``'s SQL names."""
    mine = package_of(module)
    if mine is None:
        return set()
    return {
        table
        for text in sql_strings(source)
        for table in _TABLE.findall(text)
        if table in owner_of and owner_of[table] != mine
    }


def modules() -> Iterator[tuple[str, str]]:
    """Yield (module name, source) for every module of the scanned packages."""
    for top in ("geo311", "layers", "work_orders", "dispatch", "maps"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield module, path.read_text()


def test_the_scan_sees_a_foreign_table_in_plain_and_f_string_sql() -> None:
    owner_of = owners()
    assert owner_of["incidents"] == "work_orders"
    assert owner_of["wards"] == "layers"
    assert owner_of["photos"] == "geo311.kernel"
    source = 'Q = "SELECT id FROM incidents i JOIN wards w ON true"\nR = f"DELETE FROM crews {x}"'
    assert foreign_tables("layers.service", source, owner_of) == {"incidents", "crews"}
    assert foreign_tables("work_orders.transitions", source, owner_of) == {"wards", "crews"}
    assert foreign_tables("geo311.cli", source, owner_of) == set()


def test_no_module_reads_another_packages_tables_in_sql() -> None:
    owner_of = owners()
    found = {
        module: tables
        for module, source in modules()
        if (tables := foreign_tables(module, source, owner_of))
    }
    new = {m: sorted(t - EXCEPTIONS.get(m, set())) for m, t in found.items()}
    new = {m: t for m, t in new.items() if t}
    assert not new, (
        "these modules read other packages' tables in SQL; call the owning package's query "
        f"functions instead: {new}"
    )
    stale = {m: sorted(t - found.get(m, set())) for m, t in EXCEPTIONS.items()}
    stale = {m: t for m, t in stale.items() if t}
    assert not stale, f"no longer read, take them off EXCEPTIONS: {stale}"
