"""Server-side extraction: conversations in, memories out (docs/extraction.md).

    types.py    the domain of jobs: messages, specs, plans, outcomes
    jobs.py     SqliteJobStore: the durable job table
    llm.py      the mem0ai adapter: its prompts, its LlmFactory clients, parsing
    planner.py  LLM answers -> a plan of facts -> WriteOps -> per-fact outcomes
    runner.py   ExtractionRunner: ordered per scope, parallel across scopes, retries

Depends on the service's write path (MemoryService.write) and on nothing of gRPC.
"""
