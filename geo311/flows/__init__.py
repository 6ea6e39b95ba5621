"""Use cases that span domains, each calling them in one visible order.

A flow is a plain function like a service (session first, keyword-only arguments, flushes
only; the caller commits), living above the domains it calls so that no domain needs to know
another one at its own level: the resident domains (intake, dedup, Open311) never import
dispatch, so whatever a resident's report sets off in dispatch is called from here.
"""
