"""Server-side extraction: conversations in, memories out (docs/extraction.md).

    types.py    the domain of jobs: messages, specs, plans, outcomes
    job_store.py  JobStore: the durable job table, as the runner and API use it
    job_rows.py   a job as a table row (columns, JSON fields), for both stores
    jobs.py     SqliteJobStore: jobs in the store's SQLite file
    pg_jobs.py  PgJobStore: jobs in the PostgreSQL store, shared by its servers
    llm.py      the mem0ai adapter: its prompts, its LlmFactory clients, parsing
    planner.py  LLM answers -> a plan of facts -> WriteOps -> per-fact outcomes
    runner.py   ExtractionRunner: ordered per scope, parallel across scopes, retries

Depends on the service's write path (MemoryService.write) and on nothing of gRPC.
"""
