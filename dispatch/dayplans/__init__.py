"""Stored day plans: make one from the open work orders, move jobs between crews, lock stops,
re-plan the crews a move touched. Plain functions, the session first; they flush, the caller
commits.

``work`` reads the open work a plan may take; ``store`` keeps the plan row, its version and
writes a solved day into it; ``commands`` are what a dispatcher does (make a plan, move jobs,
lock a stop, re-plan crews); ``views`` reads a plan back; ``appointments`` sets a work order's
appointment window.

A day's plan is one row (``DayPlan``) whose ``version`` grows with every change; every change
takes that row's lock first, so two dispatchers acting at once get one winner and one
``StalePlan`` conflict, never a lost move. What a plan owes the work orders it places: their
crew (``WorkOrder.crew_id``) and the status ``scheduled``, through the work-order lifecycle.

Rules kept here, in one place:

* A crew's in-progress (and finished) stops are never moved: a re-plan keeps them as they are
  and starts the crew from the job it is working on.
* A locked stop keeps its crew and its start time, within ``routing.lock_slack_s``.
* A dispatcher's move pins the job to the crew (``WorkOrderTerms.pinned_crew_id``) for every
  later plan, until another move; sending a job back to the queue takes it off every plan.
* A job's crew must hold the skills the rules give it and cover its ward; nothing overrides
  that, not even a dispatcher (``NotEligible``).
"""
