"""The assignment rules, without a database: skill, territory, working day, least loaded."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from dispatch.rules import CrewFacts, JobFacts, SkillRule, choose_crew, required_skills

MONDAY = date(2026, 6, 1)
SATURDAY = date(2026, 6, 6)

RULES = [
    SkillRule("pothole", None, "paving"),
    SkillRule("streetlight_out", None, "electrical"),
    SkillRule(None, "tree", "arborist"),
    SkillRule("graffiti", None, "general"),
    # Graffiti on a streetlight pole still needs a cleaner, but one cleared to work on poles.
    SkillRule("graffiti", "streetlight", "general"),
    SkillRule("graffiti", "streetlight", "electrical"),
]


def crew(id: int, code: str, skills: set[str], wards: set[str], **kw: object) -> CrewFacts:
    return CrewFacts(id=id, code=code, skills=frozenset(skills), territory=frozenset(wards), **kw)  # type: ignore[arg-type]


CREWS = [
    crew(1, "paving-north", {"paving"}, {"1", "2", "3"}),
    crew(2, "paving-south", {"paving"}, {"4", "5", "6"}),
    crew(3, "lighting", {"electrical"}, {"1", "2", "3", "4", "5", "6"}),
    crew(4, "forestry", {"arborist", "general"}, {"1", "2", "3"}),
    crew(5, "cleaning", {"general"}, {"3", "4", "5", "6"}),
    crew(6, "weekend-paving", {"paving"}, {"1"}, workdays=frozenset({6, 7})),
]


def job(
    category: str, ward: str | None, asset_type: str | None = None, on: date = MONDAY
) -> JobFacts:
    return JobFacts(category_code=category, asset_type=asset_type, ward_code=ward, due_on=on)


def test_most_specific_rules_win() -> None:
    assert required_skills(RULES, category_code="pothole", asset_type=None) == {"paving"}
    # Category and asset type together beat the category alone.
    assert required_skills(RULES, category_code="graffiti", asset_type="streetlight") == {
        "general",
        "electrical",
    }
    assert required_skills(RULES, category_code="graffiti", asset_type="tree") == {"general"}
    # No category rule: the asset type's rule applies.
    assert required_skills(RULES, category_code="tree_down", asset_type="tree") == {"arborist"}
    assert required_skills(RULES, category_code="missed_collection", asset_type=None) == set()


def test_skill_then_territory_picks_the_local_crew() -> None:
    assert choose_crew(job("pothole", "2"), CREWS, RULES).crew_code == "paving-north"
    assert choose_crew(job("pothole", "5"), CREWS, RULES).crew_code == "paving-south"
    assert choose_crew(job("tree_down", "1", "tree"), CREWS, RULES).crew_code == "forestry"


def test_shared_ward_goes_to_the_least_loaded_crew() -> None:
    # Ward 3 is shared by forestry and cleaning for general work.
    loads = {4: 6 * 3600.0, 5: 1 * 3600.0}
    choice = choose_crew(job("graffiti", "3"), CREWS, RULES, load_s=loads)
    assert choice.crew_code == "cleaning"
    assert choice.candidates == ("cleaning", "forestry")
    loads = {4: 1 * 3600.0, 5: 6 * 3600.0}
    assert choose_crew(job("graffiti", "3"), CREWS, RULES, load_s=loads).crew_code == "forestry"


def test_load_is_weighed_against_the_shift() -> None:
    short = crew(7, "a-short", {"water"}, {"1"}, shift_s=4 * 3600)
    long = crew(8, "b-long", {"water"}, {"1"}, shift_s=10 * 3600)
    rules = [SkillRule("hydrant_leak", None, "water")]
    # 3 h of 4 is fuller than 5 h of 10: the long shift takes the job.
    loads = {7: 3 * 3600.0, 8: 5 * 3600.0}
    assert choose_crew(job("hydrant_leak", "1"), [short, long], rules, load_s=loads).crew_code == (
        "b-long"
    )


def test_ties_go_to_the_lower_code_whatever_the_order() -> None:
    a = crew(10, "alpha", {"water"}, {"1"})
    b = crew(11, "bravo", {"water"}, {"1"})
    rules = [SkillRule("hydrant_leak", None, "water")]
    assert choose_crew(job("hydrant_leak", "1"), [b, a], rules).crew_code == "alpha"
    assert choose_crew(job("hydrant_leak", "1"), [a, b], rules).crew_code == "alpha"


@pytest.mark.parametrize(
    ("facts", "reason", "says"),
    [
        (job("hydrant_leak", "1"), "no_skill", "(water)"),
        (job("graffiti", "1", "streetlight"), "no_skill", "(electrical, general)"),
        (job("pothole", None), "no_ward", "in no ward"),
        (job("tree_down", "5", "tree"), "no_territory", "ward 5 is in no territory"),
    ],
)
def test_no_eligible_crew_gives_the_reason(facts: JobFacts, reason: str, says: str) -> None:
    rules = [*RULES, SkillRule("hydrant_leak", None, "water")]
    choice = choose_crew(facts, CREWS, rules)
    assert choice.crew_id is None
    assert choice.reason == reason
    assert says in choice.detail


def test_a_crew_off_on_the_due_date_is_passed_over() -> None:
    # Only the weekend crew covers ward 1 on a Saturday; on Monday the weekday crew does.
    assert choose_crew(job("pothole", "1", on=SATURDAY), CREWS, RULES).crew_code == (
        "weekend-paving"
    )
    assert choose_crew(job("pothole", "1", on=MONDAY), CREWS, RULES).crew_code == "paving-north"
    choice = choose_crew(job("pothole", "5", on=SATURDAY), CREWS, RULES)
    assert choice.reason == "not_working"
    assert "2026-06-06" in choice.detail


def test_inactive_crews_get_nothing() -> None:
    crews = [crew(1, "paving-north", {"paving"}, {"1"}, active=False)]
    assert choose_crew(job("pothole", "1"), crews, RULES).reason == "not_working"


def test_skills_are_never_violated_on_random_jobs() -> None:
    rng = random.Random(5)
    categories = ["pothole", "streetlight_out", "tree_down", "graffiti", "missed_collection"]
    asset_types = [None, "tree", "streetlight"]
    by_code = {c.code: c for c in CREWS}
    assigned = 0
    for _ in range(500):
        facts = job(
            rng.choice(categories),
            rng.choice(["1", "2", "3", "4", "5", "6", None]),
            rng.choice(asset_types),
            on=rng.choice([MONDAY, SATURDAY]),
        )
        loads = {c.id: rng.uniform(0, 8 * 3600) for c in CREWS}
        choice = choose_crew(facts, CREWS, RULES, load_s=loads)
        if choice.crew_code is None:
            assert choice.reason is not None
            continue
        assigned += 1
        chosen = by_code[choice.crew_code]
        assert choice.skills <= chosen.skills
        assert facts.ward_code in chosen.territory
        assert facts.due_on is not None
        assert chosen.works_on(facts.due_on)
        # Nobody eligible was less loaded.
        for other in CREWS:
            if (
                choice.skills <= other.skills
                and facts.ward_code in other.territory
                and other.works_on(facts.due_on)
            ):
                assert loads[other.id] / other.shift_s >= loads[chosen.id] / chosen.shift_s
    assert assigned > 150


# --- the days a job can be done: from today to its due date ----------------------------------

THURSDAY = date(2026, 6, 4)
SUNDAY = date(2026, 6, 7)
WEEKDAY_PAVERS = [crew(1, "paving", {"paving"}, {"1"})]


def test_a_job_due_on_saturday_is_for_a_weekday_crew_before_it() -> None:
    due_saturday = JobFacts("pothole", None, "1", due_on=SATURDAY, today=THURSDAY)
    choice = choose_crew(due_saturday, WEEKDAY_PAVERS, RULES)
    assert choice.crew_code == "paving"
    assert choice.day == THURSDAY
    assert "Thu 2026-06-04" in choice.detail
    # Without today only the due date counts, and nobody works on it.
    assert choose_crew(job("pothole", "1", on=SATURDAY), WEEKDAY_PAVERS, RULES).reason == (
        "not_working"
    )


def test_a_crew_off_today_still_gets_work_due_after_its_next_shift() -> None:
    # Reported on Saturday, due on Tuesday: Monday is the first day the crew can do it.
    choice = choose_crew(
        JobFacts("pothole", None, "1", due_on=date(2026, 6, 9), today=SATURDAY),
        WEEKDAY_PAVERS,
        RULES,
    )
    assert (choice.crew_code, choice.day) == ("paving", date(2026, 6, 8))


def test_nobody_on_shift_before_it_is_due_waits_with_the_first_crew_back() -> None:
    choice = choose_crew(
        JobFacts("pothole", None, "1", due_on=SUNDAY, today=SATURDAY), WEEKDAY_PAVERS, RULES
    )
    assert choice.crew_id is None
    assert choice.reason == "not_working"
    assert "between Sat 2026-06-06 and Sun 2026-06-07" in choice.detail
    assert "paving on Mon 2026-06-08" in choice.detail


@pytest.mark.parametrize(
    ("due_on", "past_due"),
    [(date(2026, 6, 3), False), (SATURDAY, True)],
    ids=["due-days-ago", "due-earlier-today"],
)
def test_overdue_work_goes_to_the_crews_next_working_day(due_on: date, past_due: bool) -> None:
    late = JobFacts("pothole", None, "1", due_on=due_on, today=SATURDAY, past_due=past_due)
    choice = choose_crew(late, WEEKDAY_PAVERS, RULES)
    assert (choice.crew_code, choice.day) == ("paving", date(2026, 6, 8))
    assert "overdue" in choice.detail


def test_a_crew_with_no_working_day_in_a_week_is_not_working() -> None:
    idle = [crew(1, "paving", {"paving"}, {"1"}, workdays=frozenset())]
    late = JobFacts("pothole", None, "1", due_on=THURSDAY, today=SATURDAY)
    assert choose_crew(late, idle, RULES).reason == "not_working"


def test_load_is_weighed_against_the_shifts_before_the_due_date() -> None:
    # Due on Wednesday, seen on Monday: the weekday crew has three shifts to do it in, the
    # Monday-only crew one. Ten booked hours over three shifts is less full than four over one.
    rules = [SkillRule("hydrant_leak", None, "water")]
    weekdays = crew(1, "b-weekdays", {"water"}, {"1"})
    mondays = crew(2, "a-mondays", {"water"}, {"1"}, workdays=frozenset({1}))
    facts = JobFacts("hydrant_leak", None, "1", due_on=date(2026, 6, 3), today=MONDAY)
    loads = {1: 10 * 3600.0, 2: 4 * 3600.0}
    choice = choose_crew(facts, [mondays, weekdays], rules, load_s=loads)
    assert choice.crew_code == "b-weekdays"
    assert choice.candidates == ("b-weekdays", "a-mondays")


def test_equal_load_goes_to_the_crew_that_can_start_sooner() -> None:
    rules = [SkillRule("hydrant_leak", None, "water")]
    tuesdays = crew(1, "a-tuesdays", {"water"}, {"1"}, workdays=frozenset({2}))
    mondays = crew(2, "b-mondays", {"water"}, {"1"}, workdays=frozenset({1}))
    facts = JobFacts("hydrant_leak", None, "1", due_on=date(2026, 6, 2), today=MONDAY)
    assert choose_crew(facts, [tuesdays, mondays], rules).crew_code == "b-mondays"


def test_random_jobs_land_on_a_day_the_crew_works_in_their_window() -> None:
    rng = random.Random(11)
    by_code = {c.code: c for c in CREWS}
    assigned = 0
    for _ in range(500):
        today = MONDAY + timedelta(days=rng.randrange(7))
        due_on = today + timedelta(days=rng.randrange(-3, 6))
        facts = JobFacts(
            rng.choice(["pothole", "streetlight_out", "graffiti"]),
            None,
            rng.choice(["1", "3", "5"]),
            due_on=due_on,
            today=today,
            past_due=rng.random() < 0.2,
        )
        choice = choose_crew(facts, CREWS, RULES)
        if choice.crew_code is None:
            assert choice.reason is not None
            continue
        assigned += 1
        chosen = by_code[choice.crew_code]
        assert choice.day is not None
        assert chosen.works_on(choice.day)
        # Its first working day from today on (overdue work has no later bound).
        assert choice.day == chosen.next_working_day(today)
        if not facts.overdue:
            assert choice.day <= due_on
    assert assigned > 250
