"""How a city's export is read (columns, categories, time zone, closed statuses, the
outside rule), and what an import reports back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo311.kernel.errors import AppError, FieldError, ValidationFailed


class ImportFailed(AppError):
    status = 422
    code = "import_failed"
    title = "The file cannot be imported"


# --- mapping -----------------------------------------------------------------------------------


class ColumnMap(BaseModel):
    """Which CSV column holds each field. Optional fields may be None (not in the file)."""

    model_config = ConfigDict(extra="forbid")

    id: str = "id"
    time: str = "time"
    category: str = "category"
    lat: str = "lat"
    lon: str = "lon"
    address: str | None = "address"
    status: str | None = "status"
    closed: str | None = Field(default="closed_at", description="When the report was closed")
    description: str | None = None
    tie_break: str | None = Field(
        default=None,
        description="Orders rows of the same time (e.g. day-only dates) by this column "
        "(e.g. the request number: numerically when it is a number), not by the file's order",
    )


# What each mapped field is used for, in the summary's words.
FIELD_USES = {
    "id": "the row's id (reports' external id; a repeated id is skipped)",
    "time": "the time reported",
    "category": "the category",
    "lat": "the latitude",
    "lon": "the longitude",
    "address": "the address (normalised, a dedup signal)",
    "status": "the status (closed statuses close the report)",
    "closed": "the time closed",
    "description": "the description",
    "tie_break": "the order of rows of the same time",
}

OutsideRule = Literal["nearest-ward", "keep", "skip"]


class ImportMapping(BaseModel):
    """How to read a city's export: columns, categories, time zone and closed statuses."""

    model_config = ConfigDict(extra="forbid")

    columns: ColumnMap = Field(default_factory=ColumnMap)
    categories: dict[str, str | None] = Field(
        default_factory=dict,
        description="Source value (e.g. a complaint type) → category code; null skips the "
        "value's rows. Empty: the values are category codes.",
    )
    timezone: str | None = Field(
        default=None, description="For times without an offset. Default: the jurisdiction's"
    )
    time_format: str | None = Field(
        default=None, description="strptime format; default ISO 8601 (with or without 'T')"
    )
    closed_statuses: list[str] = Field(
        default_factory=lambda: ["closed", "resolved", "completed", "done", "fixed"],
        description="Status values (any case) that mean closed even without a closed time",
    )
    outside: OutsideRule = Field(
        default="skip",
        description="Rows outside every ward of the ward map in force, but within "
        "outside_within_m of one: put them in the nearest ward, keep them without a ward, or "
        "skip them. Farther rows are always skipped.",
    )
    outside_within_m: float = Field(default=50.0, ge=0, le=10_000)

    @classmethod
    def load(cls, path: Path) -> ImportMapping:
        """Return the mapping in a JSON file; ValidationFailed naming what is wrong."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            errors = [
                FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
            ]
            raise ValidationFailed(
                f"{path}: not a valid mapping: " + "; ".join(e.message for e in errors),
                errors=errors,
            ) from exc
        except OSError as exc:
            raise ValidationFailed(f"{path}: cannot read the mapping file: {exc}") from exc


# --- results -----------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import did; ``skipped`` counts rows by reason."""

    rows: int = 0
    imported: int = 0
    incidents_opened: int = 0
    matched: int = 0
    reopened: int = 0
    off: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # (field, column, found by its default name) for every column the import read.
    columns: list[tuple[str, str, bool]] = field(default_factory=list)
    unused_columns: list[str] = field(default_factory=list)
    # Rows outside the ward map but near it: put in the nearest ward, or kept without one.
    nearest_ward: int = 0
    kept_outside: int = 0
    # Rows no other row of the file could meet: opened incidents without a candidate search.
    lone: int = 0
    elapsed_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)
    # Whether the rows were written as a bulk load (foreign keys checked once, at the end).
    bulk: bool = False
    # The local days (the import's time zone) on which imported rows were reported or closed.
    touched_days: set[date] = field(default_factory=set)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


Progress = Callable[[str, int, int | None], None]
"""Called as progress(phase, done, total): phases 'stage' (bytes), 'place', 'dedup' (rows),
'report' (rows)."""
