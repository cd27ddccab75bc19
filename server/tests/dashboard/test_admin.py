"""In a real browser, as an admin key of one tenant: the overview (stats,
request metrics, redacted settings), API keys (created and shown once,
listed, revoked), forgetting a scope after a dry run, and export."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from playwright.sync_api import expect

from mnemo.v1 import memory_service_pb2 as pb

from ..security.conftest import BOOTSTRAP, Keyed, create, fails
from .conftest import Dash, Tab, sign_in


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_the_overview_shows_stats_metrics_and_settings_without_secrets(dash: Dash, tab: Tab) -> None:
    alice = user()
    create(dash.writer, "Alice collects stamps", user_id=alice)
    create(dash.stranger, "not this tenant's", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.admin.secret)
    expect(page.locator("#ov-summary")).to_contain_text("serving")
    expect(page.locator("#ov-summary")).to_contain_text("Mnemo 0.")
    stats = page.locator("#ov-stats")
    expect(stats).to_contain_text(f"Tenant {dash.tenant}: 1 memories")
    expect(stats).to_contain_text(f"user {alice}")
    expect(stats).to_contain_text("Index shards")
    expect(stats).to_contain_text("hit rate")
    expect(page.locator("#ov-metrics")).to_contain_text("MemoryService/CreateMemory")
    expect(page.locator("#ov-metrics")).to_contain_text("ms")
    page.click("#ov-settings-box summary")
    settings = page.locator("#ov-settings")
    expect(settings).to_contain_text("auth.bootstrap_key")
    row = page.locator("#ov-settings tr", has_text="auth.bootstrap_key").first
    expect(row).to_contain_text("(redacted)")
    assert BOOTSTRAP not in page.content()
    assert dash.stranger.key_id not in page.content()
    # The other tenant is not among the tenants this admin sees.
    assert page.locator("#ov-stats h3", has_text="Tenant ").count() == 1


def test_an_api_key_is_shown_once_listed_and_revoked(dash: Dash, tab: Tab) -> None:
    page = tab.page
    sign_in(page, dash, dash.admin.secret)
    page.click("#tabs [data-tab=admin]")
    page.select_option("#key-form [name=role]", "API_KEY_ROLE_READER")
    page.fill("#key-form [name=displayName]", "dashboard-made")
    page.fill("#key-form [name=userIds]", "alice, bob")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-secret")).to_contain_text("shown only this once")
    secret = page.locator("#key-secret-value").text_content() or ""
    assert secret.startswith("mnemo_")
    key_id = secret.split("_")[1]
    made = Keyed(dash.server.memory, secret)
    made.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "alice"}))  # the key works
    row = page.locator("#keys-list tbody tr", has_text=key_id)
    expect(row).to_contain_text("dashboard-made")
    expect(row).to_contain_text("reader")
    expect(row).to_contain_text("alice, bob")
    page.click("#key-secret button")  # Done
    expect(page.locator("#key-secret")).to_be_hidden()
    page.reload()
    page.click("#tabs [data-tab=admin]")
    expect(page.locator("#keys-list tbody tr", has_text=key_id)).to_have_count(1)
    assert secret not in page.content()  # never shown again
    button = page.locator("#keys-list tbody tr", has_text=key_id).locator("button")
    button.click()
    expect(button).to_have_text("Really revoke")
    button.click()
    expect(page.locator("#keys-list tbody tr", has_text=key_id)).to_have_count(0)
    _, reason = fails(lambda: made.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "alice"})))
    assert reason == "API_KEY_REVOKED" or reason == "API_KEY_INVALID"
    page.check("#keys-form [name=showRevoked]")
    page.click("#keys-form button[type=submit]")
    expect(page.locator("#keys-list tbody tr", has_text=key_id)).to_contain_text("revoked")


def test_forget_runs_dry_first_then_deletes_exactly_that(dash: Dash, tab: Tab) -> None:
    bob, carol = user(), user()
    for i in range(3):
        create(dash.writer, f"Bob fact {i}", user_id=bob)
    create(dash.writer, "Carol stays", user_id=carol)
    page = tab.page
    sign_in(page, dash, dash.admin.secret)
    page.click("#tabs [data-tab=admin]")
    page.fill("#forget-form [name=userId]", bob)
    page.click("#forget-form button[type=submit]")
    expect(page.locator("#forget-count")).to_have_text(
        "Dry run: 3 memories would be deleted. Nothing was deleted."
    )
    listed = dash.writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": bob}))
    assert len(listed.memories) == 3
    # Changing the scope after the dry run withdraws the delete button.
    page.fill("#forget-form [name=userId]", carol)
    expect(page.locator("#forget-confirm")).to_be_hidden()
    page.fill("#forget-form [name=userId]", bob)
    page.click("#forget-form button[type=submit]")
    page.click("#forget-confirm")
    expect(page.locator("#forget-result")).to_contain_text("Deleted 3 memories")
    assert not dash.writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": bob})).memories
    assert (
        len(dash.writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": carol})).memories) == 1
    )


def test_export_downloads_the_scope_as_json_lines(dash: Dash, tab: Tab) -> None:
    dana = user()
    create(dash.writer, "Dana rides a bike", user_id=dana)
    create(dash.writer, "Dana <b>bold</b>", user_id=dana)
    create(dash.stranger, "a stranger's memory", user_id=dana)
    page = tab.page
    sign_in(page, dash, dash.admin.secret)
    page.click("#tabs [data-tab=admin]")
    page.fill("#export-form [name=userId]", dana)
    page.click("#export-form button[type=submit]")
    expect(page.locator("#export-result")).to_contain_text("2 memories exported")
    with page.expect_download() as download:
        page.click("#export-link")
    lines = [json.loads(x) for x in Path(download.value.path()).read_text().splitlines()]
    assert lines[0]["header"]["formatVersion"] == 1
    assert sorted(x["memory"]["content"] for x in lines[1:]) == ["Dana <b>bold</b>", "Dana rides a bike"]
    assert all("embedding" not in x["memory"] for x in lines[1:])
