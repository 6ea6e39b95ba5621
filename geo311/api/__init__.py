"""Routes whose use cases span domains (a report sets off dispatch's assignment; a split opens
an incident that dispatch assigns; the notices of requesters, who belong to work orders). They
sit above the domains and call ``geo311.flows`` where a use case spans them; routes within one
domain stay in that domain's ``router.py``."""
