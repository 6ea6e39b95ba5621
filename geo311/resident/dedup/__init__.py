"""Duplicate detection: one incident per real-world problem, and the staff tools to fix it."""
