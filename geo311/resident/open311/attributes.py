"""Service definition attributes: what a category asks, and checking a client's answers.

Pure logic, no I/O: the service loads the definitions and stores what this module returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geo311.kernel.errors import FieldError, ValidationFailed

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
STRING_MAX_CHARS = 500
TEXT_MAX_CHARS = 4000


@dataclass(frozen=True)
class Choice:
    """One option of a list attribute: the key a client sends and the name a person reads."""

    key: str
    name: str


@dataclass(frozen=True)
class AttributeDefinition:
    """One question of a service definition, as Open311 describes it."""

    code: str
    datatype: str
    description: str
    order: int
    required: bool = False
    variable: bool = True
    datatype_description: str | None = None
    choices: tuple[Choice, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.datatype not in DATATYPES:
            raise ValueError(f"datatype must be one of {', '.join(DATATYPES)}: {self.datatype!r}")
        if (self.datatype in LIST_DATATYPES) != bool(self.choices):
            raise ValueError(f"attribute {self.code!r}: choices belong to list datatypes only")
        if self.order < 1:
            raise ValueError(f"attribute {self.code!r}: order must be a positive integer")
        if len({c.key for c in self.choices}) != len(self.choices):
            raise ValueError(f"attribute {self.code!r}: choice keys must be unique")


def _number(raw: str) -> int | float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in raw and "e" not in raw.lower() else value


def check_attributes(
    definitions: Sequence[AttributeDefinition], submitted: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Return the answers to store, ``{code: value or [values]}``, checked against the
    definitions; raise ValidationFailed naming every bad attribute at once.

    Codes the definition does not ask for are dropped, not refused: clients such as
    FixMyStreet send attributes of their own, and refusing them would refuse the report.
    Empty values count as missing.
    """
    errors: list[FieldError] = []
    answers: dict[str, Any] = {}
    for definition in sorted(definitions, key=lambda d: (d.order, d.code)):
        if not definition.variable:
            continue
        name = f"attribute[{definition.code}]"
        values = [v.strip() for v in submitted.get(definition.code, ()) if v.strip()]
        if not values:
            if definition.required:
                errors.append(FieldError(name, f"{name} is required", "missing"))
            continue
        if definition.datatype != "multivaluelist" and len(values) > 1:
            errors.append(FieldError(name, f"{name} takes one value, not {len(values)}", "invalid"))
            continue
        value = values[0]
        keys = {c.key for c in definition.choices}
        if definition.datatype == "number":
            number = _number(value)
            if number is None:
                errors.append(
                    FieldError(name, f"{name} must be a number, not {value!r}", "not_a_number")
                )
            else:
                answers[definition.code] = number
        elif definition.datatype == "datetime":
            try:
                parsed = datetime.fromisoformat(value.replace("z", "Z"))
            except ValueError:
                errors.append(
                    FieldError(
                        name,
                        f"{name} must be an ISO 8601 date or date-time, not {value!r}",
                        "invalid",
                    )
                )
            else:
                answers[definition.code] = parsed.isoformat()
        elif definition.datatype in ("string", "text"):
            limit = STRING_MAX_CHARS if definition.datatype == "string" else TEXT_MAX_CHARS
            if definition.datatype == "string" and ("\n" in value or "\r" in value):
                errors.append(FieldError(name, f"{name} must be a single line", "invalid"))
            elif len(value) > limit:
                errors.append(
                    FieldError(name, f"{name} is longer than {limit} characters", "too_long")
                )
            else:
                answers[definition.code] = value
        elif definition.datatype == "singlevaluelist":
            if value not in keys:
                errors.append(_not_a_choice(name, value, definition))
            else:
                answers[definition.code] = value
        else:  # multivaluelist
            unknown = [v for v in values if v not in keys]
            if unknown:
                errors.append(_not_a_choice(name, unknown[0], definition))
            else:
                answers[definition.code] = list(dict.fromkeys(values))
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    return answers


def _not_a_choice(name: str, value: str, definition: AttributeDefinition) -> FieldError:
    keys = ", ".join(c.key for c in definition.choices)
    return FieldError(name, f"{name}: {value!r} is not one of {keys}", "not_a_choice")
