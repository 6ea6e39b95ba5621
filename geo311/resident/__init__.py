"""The resident-facing domains: intake (reports and their requesters' contact), dedup (matching,
merge/split, fitting) and the Open311 API's service. They sit beside dispatch and never import
it; what a report sets off in dispatch is called from ``geo311.flows``."""
