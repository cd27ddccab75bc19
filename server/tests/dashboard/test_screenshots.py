"""Screenshots of the dashboard's main screens, taken in the real browser
against a real server with a little data. They go to a temporary folder
(checked to be real PNGs); to refresh the ones in docs/dashboard/:

    MNEMO_DASHBOARD_SCREENSHOTS=docs/dashboard \
        .venv/bin/python -m pytest server/tests/dashboard/test_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from .conftest import Dash, Tab, sign_in

SCREENS = ("overview", "memories", "memory", "search", "feed", "admin")
PNG = b"\x89PNG\r\n\x1a\n"


def seed(dash: Dash) -> list[m.Memory]:
    rows = [
        ("alice", "travel-agent", "Alice is allergic to peanuts", m.MEMORY_KIND_SEMANTIC, ["diet", "health"]),
        (
            "alice",
            "travel-agent",
            "Alice prefers window seats on long flights",
            m.MEMORY_KIND_SEMANTIC,
            ["travel"],
        ),
        ("alice", "travel-agent", "Booked Lisbon hotel for 12-15 May", m.MEMORY_KIND_EPISODIC, ["booking"]),
        (
            "bob",
            "support-bot",
            "To reset a password: Settings, Security, Reset",
            m.MEMORY_KIND_PROCEDURAL,
            [],
        ),
        ("bob", "support-bot", "<img src=x onerror=alert(1)> came in a ticket", m.MEMORY_KIND_EPISODIC, []),
    ]
    made = []
    for user_id, agent_id, content, kind, tags in rows:
        request = pb.CreateMemoryRequest(
            memory=m.Memory(user_id=user_id, agent_id=agent_id, content=content, kind=kind, tags=tags)
        )
        made.append(dash.writer.memory.CreateMemory(request).memory)
    dash.writer.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=made[0].id, content="Alice is severely allergic to peanuts", pinned=True),
            update_mask={"paths": ["content", "pinned"]},
        )
    )
    return made


def test_screenshots_of_the_main_screens(dash: Dash, tab: Tab, tmp_path: Path) -> None:
    out = Path(os.environ.get("MNEMO_DASHBOARD_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    made = seed(dash)
    page = tab.page
    sign_in(page, dash, dash.admin.secret)
    expect(page.locator("#ov-metrics tbody tr").first).to_be_visible()
    page.screenshot(path=out / "overview.png", full_page=True)

    page.click("#tabs [data-tab=memories]")
    expect(page.locator("#browse-results tbody tr")).to_have_count(5)
    page.screenshot(path=out / "memories.png")

    page.locator("#browse-results tbody tr", has_text="severely").click()
    expect(page.locator("#detail-history tbody tr")).to_have_count(2)
    page.screenshot(path=out / "memory.png")
    page.click("#detail-close")

    page.click("#tabs [data-tab=search]")
    page.fill("#search-form [name=query]", "what can alice not eat?")
    page.select_option("#search-form [name=mode]", "SEARCH_MODE_HYBRID")
    page.check("#search-form [name=explain]")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#search-results tbody tr").first).to_contain_text("peanuts")
    page.screenshot(path=out / "search.png")

    page.click("#tabs [data-tab=feed]")
    expect(page.locator("#feed-status")).to_contain_text("Live", timeout=15_000)
    dash.writer.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id="alice", content="Alice asked for a vegan menu"))
    )
    dash.writer.memory.DeleteMemory(pb.DeleteMemoryRequest(id=made[2].id))
    expect(page.locator("#feed-events tbody tr")).to_have_count(2, timeout=15_000)
    page.screenshot(path=out / "feed.png")
    page.click("#feed-toggle")

    page.click("#tabs [data-tab=admin]")
    page.fill("#key-form [name=displayName]", "support dashboard")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-secret")).to_be_visible()
    page.fill("#forget-form [name=userId]", "bob")
    page.click("#forget-form button[type=submit]")
    expect(page.locator("#forget-count")).to_contain_text("2 memories would be deleted")
    page.screenshot(path=out / "admin.png", full_page=True)

    for name in SCREENS:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    assert tab.dialogs == [] and tab.errors == []
