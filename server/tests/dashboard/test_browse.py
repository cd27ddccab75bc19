"""In a real browser: signing in, browsing and filtering, searching, one
memory's history and links, content shown as text, and tenants kept apart."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..security.conftest import create
from .conftest import Dash, Tab, sign_in

XSS = "<img src=x onerror=alert(1)>"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_a_bad_key_is_refused_and_a_good_one_signs_in(dash: Dash, tab: Tab) -> None:
    page = tab.page
    page.goto(dash.url)
    page.fill("#sign-in-key", "mnemo_0123456789abcdef_not-a-real-secret")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("not valid")
    expect(page.locator("#main")).to_be_hidden()
    sign_in(page, dash, dash.writer.secret)
    expect(page.locator("#who")).to_contain_text(dash.writer.key_id)
    # Not an admin: no admin tab, and the overview says why there are no statistics.
    expect(page.locator("#tabs [data-tab=admin]")).to_be_hidden()
    expect(page.locator("#ov-stats")).to_contain_text("need an admin key")
    page.reload()
    expect(page.locator("#who")).to_contain_text(dash.writer.key_id)  # the session survives a reload
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    assert tab.errors == []


def test_browse_shows_content_as_text_and_never_another_tenants(dash: Dash, tab: Tab) -> None:
    alice = user()
    create(dash.writer, "Alice is allergic to peanuts", user_id=alice)
    create(dash.writer, XSS, user_id=alice)
    create(dash.stranger, "the other tenant's secret plan", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.reader.secret)
    page.click("#tabs [data-tab=memories]")
    page.fill("#browse-form [name=userId]", alice)
    page.click("#browse-form button[type=submit]")
    rows = page.locator("#browse-results tbody tr")
    expect(rows).to_have_count(2)
    cells = page.locator("#browse-results td.content").all_text_contents()
    assert sorted(cells) == sorted(["Alice is allergic to peanuts", XSS])
    assert page.locator("#browse-results img").count() == 0
    assert "secret plan" not in page.content()
    page.wait_for_timeout(300)  # an injected onerror handler would have fired by now
    assert tab.dialogs == [] and tab.errors == []


def test_a_bad_filter_shows_the_servers_error_inline_and_a_good_one_filters(dash: Dash, tab: Tab) -> None:
    alice = user()
    dash.writer.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=alice, content="Alice likes jazz", tags=["music"], kind=m.MEMORY_KIND_SEMANTIC
            )
        )
    )
    create(dash.writer, "Alice went to Rome", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.writer.secret)
    page.click("#tabs [data-tab=memories]")
    page.fill("#browse-form [name=userId]", alice)
    page.fill("#browse-form [name=filter]", "kind = ")
    page.click("#browse-form button[type=submit]")
    error = page.locator("#browse-error")
    expect(error).to_contain_text("INVALID_FILTER")
    expect(error).to_contain_text("filter: expected a value after kind =")
    expect(page.locator("#browse-form [name=filter]")).to_have_attribute("aria-invalid", "true")
    page.fill("#browse-form [name=filter]", 'kind = SEMANTIC AND tags:"music"')
    page.click("#browse-form button[type=submit]")
    expect(error).to_be_hidden()
    expect(page.locator("#browse-results td.content")).to_have_text(["Alice likes jazz"])
    expect(page.locator("#browse-form [name=filter]")).not_to_have_attribute("aria-invalid", "true")


def test_search_with_every_option_and_an_explanation(dash: Dash, tab: Tab) -> None:
    alice = user()
    create(dash.writer, "Alice is allergic to peanuts", user_id=alice)
    create(dash.writer, "Alice's favourite city is Lisbon", user_id=alice)
    create(dash.stranger, "peanuts peanuts peanuts", user_id=alice)
    page = tab.page
    sign_in(page, dash, dash.reader.secret)
    page.click("#tabs [data-tab=search]")
    form = "#search-form"
    page.fill(f"{form} [name=query]", "which food must alice avoid? peanuts")
    page.fill(f"{form} [name=userId]", alice)
    page.select_option(f"{form} [name=mode]", "SEARCH_MODE_HYBRID")
    page.fill(f"{form} [name=topK]", "5")
    page.fill(f"{form} [name=rrfK]", "10")
    page.check(f"{form} [name=explain]")
    page.check(f"{form} [name=includeEmbedding]")
    page.click(f"{form} button[type=submit]")
    rows = page.locator("#search-results tbody tr")
    expect(rows.first).to_contain_text("Alice is allergic to peanuts")
    expect(rows.first).to_contain_text("vector #1")
    expect(rows.first).to_contain_text("keyword #1")
    expect(rows.first).to_contain_text("fused")
    expect(rows.first).to_contain_text("384 dimensions")
    assert rows.count() == 2  # the stranger's memory is in another tenant
    # Keyword mode refuses a minimum score: the server's error, inline.
    page.select_option(f"{form} [name=mode]", "SEARCH_MODE_KEYWORD")
    page.fill(f"{form} [name=minScore]", "0.5")
    page.click(f"{form} button[type=submit]")
    expect(page.locator("#search-error")).to_contain_text("invalid_argument")
    expect(page.locator(f"{form} [name=minScore]")).to_have_attribute("aria-invalid", "true")
    page.fill(f"{form} [name=minScore]", "")
    page.fill(f"{form} [name=query]", "peanuts")
    page.click(f"{form} button[type=submit]")
    expect(page.locator("#search-results tbody tr")).to_have_count(1)
    expect(page.locator("#search-error")).to_be_hidden()


def test_a_memory_shows_its_history_links_and_metadata(dash: Dash, tab: Tab) -> None:
    alice = user()
    target = create(dash.writer, "Alice moved to Lisbon", user_id=alice)
    memory = dash.writer.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=alice,
                content="Alice lives in Porto",
                metadata={"source": m.Value(string_value=XSS)},
                links=[m.MemoryLink(target_id=target.id, relation="superseded_by")],
            )
        )
    ).memory
    dash.writer.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=memory.id, content="Alice lived in Porto"), update_mask={"paths": ["content"]}
        )
    )
    page = tab.page
    sign_in(page, dash, dash.reader.secret)
    page.click("#tabs [data-tab=memories]")
    page.fill("#browse-form [name=userId]", alice)
    page.click("#browse-form button[type=submit]")
    page.locator("#browse-results tbody tr", has_text="Alice lived in Porto").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-id")).to_have_text(memory.id)
    history = page.locator("#detail-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("update")
    expect(history.nth(1)).to_contain_text("create")
    expect(page.locator("#detail-links")).to_contain_text("superseded_by")
    expect(page.locator("#detail-metadata")).to_contain_text(XSS)
    page.locator("#detail-links tbody tr").click()  # follows the link
    expect(page.locator("#detail-id")).to_have_text(target.id)
    assert page.locator("#detail img").count() == 0 and tab.dialogs == []
