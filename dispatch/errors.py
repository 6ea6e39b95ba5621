"""Errors of the dispatch package; each renders as problem+json through geo311.kernel.http."""

from __future__ import annotations

from geo311.kernel.errors import AppError, Conflict, NotFound, ValidationFailed


class UnknownCrew(NotFound):
    code = "unknown_crew"
    title = "No such crew"


class UnknownSkill(ValidationFailed):
    code = "unknown_skill"
    title = "No such skill"


class CrewCodeTaken(Conflict):
    code = "crew_code_taken"
    title = "A crew with this code exists already"


class StaleCrew(Conflict):
    code = "stale_crew"
    title = "The crew was changed since you read it"


class SkillInUse(Conflict):
    code = "skill_in_use"
    title = "The skill is still held by crews or named by rules"


class NoRoadNetwork(AppError):
    status = 409
    code = "no_road_network"
    title = "No road network is loaded"


class BadRoadFile(ValidationFailed):
    code = "bad_road_file"
    title = "The road file cannot be read"


class NoPlan(NotFound):
    code = "no_plan"
    title = "There is no plan for this day"


class StalePlan(Conflict):
    code = "stale_plan"
    title = "The plan was changed since you read it"


class JobInProgress(Conflict):
    code = "job_in_progress"
    title = "A crew is working on this job; it is never moved"


class NotOnPlan(Conflict):
    code = "not_on_plan"
    title = "The work order is not a stop on this day's plan"


class NotEligible(ValidationFailed):
    code = "crew_not_eligible"
    title = "The crew may not do this work"
