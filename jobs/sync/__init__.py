"""API answers into rows: everything that reads Token Factory and stores what it said.

- refresh: a tracked job's snapshot, one GET per job (single-flight, backoff, rate limits);
- list_refresh: the worker's paged list reads, one call per token instead of one per job;
- training_log: a job's events and checkpoints;
- files: a job's file names and sizes (cached);
- deployments: custom models deployed from a job's checkpoints (cached);
- history: the timeline events a snapshot change means (started, finished, stalled…);
- discovery: watched tokens finding jobs as they start;
- imports: reading a token's whole job list for "Import jobs";
- listed_jobs: rows for jobs whose whole snapshot a list already gave;
- leases: how workers claim rows (jobs, watched tokens, imports) so that no two take the same;
- backoff: how long to wait after failures in a row.

This package never imports jobs.services (checked by the import contract in pyproject.toml):
people's writes call into the sync, never the other way round.
"""
