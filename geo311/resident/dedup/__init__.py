"""Duplicate detection: one incident per real-world problem, and the staff tools to fix it.

``placing`` finds the candidates near a new report and joins it to one or opens a new incident;
``status`` changes incidents' statuses through the work-order lifecycle; ``moves`` are the
dispatchers' merge, split and undo; ``importer`` places a city's history in bulk; ``scoring``
and ``grid`` are pure.

Concurrency: before it looks for candidates, a report takes transaction-scoped advisory locks
on the grid cells its radius touches (``grid.lock_keys``), so two reports that could match
each other run one after the other and the second sees the first's incident. A chosen
incident is then locked (``FOR UPDATE``) and re-checked, so a merge or a status change that
commits in between is never missed. Plain functions, the session first and keyword-only
arguments; they flush, never commit. Distances are metres on the WGS84 spheroid (PostGIS
geography).
"""
