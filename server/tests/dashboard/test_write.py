"""In a real browser: editing and deleting with the memory's etag (a stale
one refused with a clear message), a reader key refused by the server, and
the live feed updating as writes land through gRPC."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..security.conftest import create, fails
from .conftest import Dash, Tab, sign_in


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def open_memory(page: object, memory_id: str, user_id: str) -> None:
    page.click("#tabs [data-tab=memories]")  # type: ignore[attr-defined]
    page.fill("#browse-form [name=userId]", user_id)  # type: ignore[attr-defined]
    page.click("#browse-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#browse-results tbody tr", has_text=memory_id).click()  # type: ignore[attr-defined]
    expect(page.locator("#detail-id")).to_have_text(memory_id)  # type: ignore[attr-defined]


def test_an_edit_with_a_stale_etag_is_refused_clearly_and_writes_nothing(dash: Dash, tab: Tab) -> None:
    alice = user()
    memory = create(dash.writer, "Alice drinks tea", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.writer.secret)
    open_memory(page, memory.id, alice)
    # Someone else changes it meanwhile, through gRPC.
    dash.writer.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=memory.id, content="Alice drinks coffee"), update_mask={"paths": ["content"]}
        )
    )
    page.fill("#edit-form [name=content]", "Alice drinks water")
    page.click("#edit-form button[type=submit]")
    error = page.locator("#detail-error")
    expect(error).to_contain_text("changed since you opened it")
    expect(error).to_contain_text("ETAG_MISMATCH")
    got = dash.writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory
    assert got.content == "Alice drinks coffee" and got.version == 2
    # Reopened, the edit applies with the new etag; delete with a stale one is refused too.
    page.click("#detail-reload")
    expect(page.locator("#detail-fields")).to_contain_text("Alice drinks coffee")
    page.fill("#edit-form [name=content]", "Alice drinks water")
    page.fill("#edit-form [name=tags]", "drinks, morning")
    page.click("#edit-form button[type=submit]")
    expect(page.locator("#edit-result")).to_have_text("Saved: version 3.")
    got = dash.writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory
    assert got.content == "Alice drinks water" and list(got.tags) == ["drinks", "morning"]
    dash.writer.memory.UpdateMemory(
        pb.UpdateMemoryRequest(memory=m.Memory(id=memory.id, pinned=True), update_mask={"paths": ["pinned"]})
    )
    page.click("#detail-delete")
    page.click("#detail-delete-confirm")
    expect(error).to_contain_text("ETAG_MISMATCH")
    assert dash.writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory.pinned
    page.click("#detail-reload")
    expect(page.locator("#detail-fields")).to_contain_text("yes")  # pinned, reloaded
    page.click("#detail-delete")
    page.click("#detail-delete-confirm")
    expect(page.locator("#detail-fields")).to_have_text("Deleted.")
    _, reason = fails(lambda: dash.writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)))
    assert reason == "MEMORY_NOT_FOUND"


def test_a_reader_key_cannot_edit_the_server_refuses_and_the_page_says_so(dash: Dash, tab: Tab) -> None:
    alice = user()
    memory = create(dash.writer, "Alice plays chess", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.reader.secret)
    open_memory(page, memory.id, alice)
    page.fill("#edit-form [name=content]", "Alice plays go")
    page.click("#edit-form button[type=submit]")
    error = page.locator("#detail-error")
    expect(error).to_contain_text("Your key may not do this")
    expect(error).to_contain_text("permission_denied ROLE_FORBIDDEN")
    page.click("#detail-delete")
    page.click("#detail-delete-confirm")
    expect(error).to_contain_text("ROLE_FORBIDDEN")
    got = dash.writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory
    assert got.content == "Alice plays chess" and got.version == 1


def test_the_live_feed_shows_writes_as_they_land_and_only_the_tenants(dash: Dash, tab: Tab) -> None:
    alice = user()
    page = tab.page
    sign_in(page, dash, dash.reader.secret)
    page.click("#tabs [data-tab=feed]")
    expect(page.locator("#feed-status")).to_contain_text("Live", timeout=15_000)
    create(dash.stranger, "another tenant's news", user_id=alice)
    first = create(dash.writer, "Alice adopted a cat", user_id=alice)
    rows = page.locator("#feed-events tbody tr")
    expect(rows.first).to_contain_text("Alice adopted a cat", timeout=15_000)
    expect(rows.first).to_contain_text("put")
    dash.writer.memory.DeleteMemory(pb.DeleteMemoryRequest(id=first.id))
    expect(rows.first).to_contain_text("delete", timeout=15_000)
    expect(rows.first).to_contain_text(first.id)
    assert rows.count() == 2
    assert "another tenant" not in page.content()
    page.click("#feed-toggle")  # stop
    expect(page.locator("#feed-status")).to_have_text("Stopped.")
    expect(page.locator("#feed-toggle")).to_have_text("Start")
