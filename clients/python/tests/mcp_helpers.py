"""Helpers of the MCP tests: a real `mnemo mcp` process driven by the official `mcp` client.

This folder has no __init__.py (see conftest.py): the tests import this module by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

MNEMO = str(Path(sys.executable).parent / "mnemo")
BOOTSTRAP_KEY = "mcp-test-bootstrap-key-0123456789abcdef"


def env(address: str, api_key: str = "") -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MNEMO_ADDRESS": address,
        "MNEMO_API_KEY": api_key,
        "PYTHONUNBUFFERED": "1",
    }


@asynccontextmanager
async def stdio(
    address: str, *args: str, api_key: str = "", errlog: IO[str] | None = None
) -> AsyncIterator[Client]:
    """An MCP client of `mnemo mcp ARGS` spawned on stdio."""
    params = StdioServerParameters(command=MNEMO, args=["mcp", *args], env=env(address, api_key))
    log = errlog if errlog is not None else open(os.devnull, "w")  # noqa: SIM115
    try:
        async with Client(stdio_client(params, errlog=log), read_timeout_seconds=60) as client:
            yield client
    finally:
        if errlog is None:
            log.close()


class HttpServer:
    """`mnemo mcp --http 127.0.0.1:0 ARGS` as a subprocess; `url` is its endpoint."""

    def __init__(self, address: str, *args: str, api_key: str = "") -> None:
        self.popen = subprocess.Popen(
            [MNEMO, "mcp", "--http", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(address, api_key),
        )
        assert self.popen.stderr is not None
        deadline = time.monotonic() + 60
        self.url = ""
        lines = []
        while time.monotonic() < deadline and not self.url:
            line = self.popen.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"(http://\S+/mcp)", line)
            if found:
                self.url = found.group(1)
        assert self.url, "".join(lines)

    def close(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(15)
        if self.popen.stderr is not None:
            self.popen.stderr.close()


@asynccontextmanager
async def http(url: str, api_key: str | None) -> AsyncIterator[Client]:
    """An MCP client of a streamable HTTP endpoint, sending `Authorization: Bearer api_key`."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as web,
        Client(streamable_http_client(url, http_client=web), read_timeout_seconds=60) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """A successful tool call's JSON; fails the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    return json.loads(text)


async def fail(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A failed tool call's error object; fails the test if the call succeeded."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error, text
    error: dict[str, Any] = json.loads(text)["error"]
    return error
