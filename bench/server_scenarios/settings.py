"""Sizes, constants and the Plan: how long each phase of a size runs."""

from __future__ import annotations

from dataclasses import dataclass

DIM = 384
K = 10
SMALL = 1_000
BIG_MAX = 100_000
BATCH_WRITE = 1_000
BATCH_SEARCH = 64
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]
WRITE_METHOD = "/mnemo.v1.MemoryService/BatchWriteMemories"


@dataclass(frozen=True)
class Plan:
    """How long each phase runs; --quick shrinks everything."""

    queries: int = 300  # single calls per latency row
    health_calls: int = 2_000
    text_queries: int = 200
    batch_calls: int = 20  # BatchSearch calls with recall checked, per row
    stream_queries: int = 1_000  # StreamSearchMemories queries on one stream
    fresh: int = 60_000  # more query vectors, so that no search repeats (result cache)
    seconds: float = 4.0  # closed-loop rows
    text_seconds: float = 10.0  # the concurrent text row
    model_calls: int = 200
    model_seconds: float = 6.0
    ingest_clients: int = 2
    load_clients: int = 16  # concurrent empty calls / vector searches
    text_clients: int = 32
    channels: int = 4


QUICK = Plan(
    queries=60,
    fresh=10_000,
    health_calls=300,
    text_queries=40,
    batch_calls=8,
    stream_queries=200,
    seconds=1.5,
    text_seconds=3.0,
    model_calls=40,
    model_seconds=2.0,
)
