"""What MCP costs per tool call: the same calls through the SDK directly (the baseline,
measured in the same run), through `mnemo mcp` on stdio and through `mnemo mcp --http`,
each driven by the official `mcp` client against one real server.

    .venv/bin/python bench/mcp_bench.py [--memories 500] [--calls 200]

The search repeats one text, so the server's caches answer it and the table shows
the transport, not the model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
import numpy as np
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from _harness.process import ServerProcess
from mnemo import AsyncMnemoClient

MNEMO = str(Path(sys.executable).parent / "mnemo")
USER = "bench-user"


def start_http(address: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [MNEMO, "mcp", "--http", "127.0.0.1:0", "--user", USER],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MNEMO_ADDRESS": address},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"(http://\S+/mcp)", line)
        if found:
            return proc, found.group(1)
    raise RuntimeError("mnemo mcp --http did not start")


async def timed(call: Callable[[], Awaitable[object]], count: int) -> np.ndarray:
    for _ in range(10):
        await call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return np.array(samples) * 1000


async def mcp_calls(client: Client, memory_id: str, calls: int) -> dict[str, np.ndarray]:
    return {
        "get": await timed(lambda: client.call_tool("get_memory", {"id": memory_id}), calls),
        "search": await timed(
            lambda: client.call_tool("search_memories", {"query": "what does the user drink?", "top_k": 5}),
            calls,
        ),
    }


async def run(address: str, memories: int, calls: int) -> dict[str, dict[str, np.ndarray]]:
    rows: dict[str, dict[str, np.ndarray]] = {}
    async with AsyncMnemoClient(address) as sdk:
        for i in range(memories):
            await sdk.create(f"Fact number {i}: the user likes item {i % 37}", user_id=USER)
        memory_id = (await sdk.create("The user drinks green tea", user_id=USER)).memory.id
        rows["SDK (gRPC, baseline)"] = {
            "get": await timed(lambda: sdk.get(memory_id), calls),
            "search": await timed(
                lambda: sdk.search("what does the user drink?", user_id=USER, top_k=5), calls
            ),
        }
    params = StdioServerParameters(
        command=MNEMO,
        args=["mcp", "--user", USER],
        env={"MNEMO_ADDRESS": address, "PATH": os.environ["PATH"]},
    )
    async with Client(stdio_client(params)) as client:
        rows["MCP stdio"] = await mcp_calls(client, memory_id, calls)
    proc, url = start_http(address)
    try:
        async with (
            httpx2.AsyncClient() as web,
            Client(streamable_http_client(url, http_client=web)) as client,
        ):
            rows["MCP streamable HTTP"] = await mcp_calls(client, memory_id, calls)
    finally:
        proc.terminate()
        proc.wait(15)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=500)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp))
        try:
            rows = asyncio.run(run(server.target, args.memories, args.calls))
        finally:
            server.kill(signal.SIGTERM)
    base = rows["SDK (gRPC, baseline)"]
    print(f"{args.calls} calls each, {args.memories + 1} memories, one user\n")
    print("| path | get p50 ms | get p90 ms | search p50 ms | search p90 ms | added p50 ms (get / search) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        g50, s50 = np.percentile(r["get"], 50), np.percentile(r["search"], 50)
        extra = (
            "-"
            if r is base
            else f"{g50 - np.percentile(base['get'], 50):.2f} / {s50 - np.percentile(base['search'], 50):.2f}"
        )
        print(
            f"| {name} | {g50:.2f} | {np.percentile(r['get'], 90):.2f} | {s50:.2f} | "
            f"{np.percentile(r['search'], 90):.2f} | {extra} |"
        )


if __name__ == "__main__":
    main()
