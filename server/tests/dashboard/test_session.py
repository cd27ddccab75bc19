"""The dashboard's session: an HttpOnly, SameSite=Strict cookie scripts
cannot read, holding no key; a CSRF token and an Origin check on every
state-changing request; a strict Content-Security-Policy."""

from __future__ import annotations

import json
import uuid

import httpx
from playwright.sync_api import expect

from mnemo.v1 import memory_service_pb2 as pb

from .conftest import Dash, Tab, sign_in

LIST = "api/rpc/mnemo.v1.MemoryService/ListMemories"
CREATE = "api/rpc/mnemo.v1.MemoryService/CreateMemory"


def test_the_session_cookie_is_httponly_strict_and_unreadable_by_scripts(dash: Dash, tab: Tab) -> None:
    page = tab.page
    sign_in(page, dash, dash.writer.secret)
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["mnemo_dashboard"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict" and session["path"] == "/dashboard"
    assert dash.writer.secret not in session["value"]
    assert page.evaluate("document.cookie") == ""
    # The key is nowhere in the page, its storage or what the server answers the page.
    storage = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert dash.writer.secret not in page.content() + storage
    who = page.evaluate("fetch('api/session').then(r => r.text())")
    assert dash.writer.secret not in who and json.loads(who)["keyId"] == dash.writer.key_id


def test_a_request_without_the_csrf_token_is_refused_with_403(dash: Dash, tab: Tab) -> None:
    page = tab.page
    sign_in(page, dash, dash.writer.secret)
    script = """async ([url, token]) => {
        const headers = {"content-type": "application/json"};
        if (token !== null) headers["x-csrf-token"] = token;
        const body = JSON.stringify({memory: {userId: "csrf", content: "forged"}});
        const r = await fetch(url, {method: "POST", headers, body});
        return [r.status, await r.text()];
    }"""
    status, body = page.evaluate(script, [CREATE, None])
    assert status == 403 and "CSRF" in body
    status, _ = page.evaluate(script, [CREATE, "not-the-token"])
    assert status == 403
    listed = dash.writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "csrf"}))
    assert list(listed.memories) == []


def test_a_page_of_another_site_cannot_act_through_the_session(dash: Dash, tab: Tab) -> None:
    page = tab.page
    sign_in(page, dash, dash.writer.secret)
    victim = f"u-{uuid.uuid4().hex[:8]}"
    # localhost is another site than 127.0.0.1: the cookie stays behind, the Origin is foreign.
    # (/healthz: a page there has no Content-Security-Policy to stop the attempt in the browser.)
    other = page.context.new_page()
    other.goto(f"{dash.origin}/healthz".replace("127.0.0.1", "localhost"))
    with other.expect_request(lambda r: CREATE in r.url) as seen:
        other.evaluate(
            """async ([url, user]) => {
                try {
                    await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                                      headers: {"content-type": "text/plain"},
                                      body: JSON.stringify({memory: {userId: user, content: "forged"}})});
                } catch { /* the answer is not this page's to read */ }
            }""",
            [f"{dash.origin}/dashboard/{CREATE}", victim],
        )
    sent = seen.value
    assert "cookie" not in sent.all_headers()  # SameSite=Strict kept the session behind
    other.wait_for_timeout(300)
    listed = dash.writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": victim}))
    assert list(listed.memories) == []
    expect(page.locator("#who")).to_contain_text(dash.writer.key_id)  # the real page is still signed in


def test_the_server_checks_origin_token_and_session_on_every_call(dash: Dash) -> None:
    base = dash.url
    signed = httpx.post(
        base + "api/session", json={"key": dash.writer.secret}, headers={"origin": dash.origin}
    )
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and dash.writer.secret not in signed.text
    session = {"cookie": cookie.split(";")[0]}
    token = signed.json()["csrfToken"]
    good = {**session, "origin": dash.origin, "x-csrf-token": token}

    def post(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(base + LIST, json={}, headers=headers)

    assert post(good).status_code == 200
    assert post({**good, "origin": "https://evil.example"}).status_code == 403
    assert post({k: v for k, v in good.items() if k != "origin"}).status_code == 403
    assert post({**good, "sec-fetch-site": "cross-site"}).status_code == 403
    assert post({k: v for k, v in good.items() if k != "x-csrf-token"}).status_code == 403
    assert post({**good, "cookie": "mnemo_dashboard=forged"}).status_code == 401
    # A sign-in from another origin is refused too (no login CSRF).
    refused = httpx.post(
        base + "api/session", json={"key": dash.writer.secret}, headers={"origin": "https://evil.example"}
    )
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    # A bad key opens no session.
    bad = httpx.post(base + "api/session", json={"key": "mnemo_0_x"}, headers={"origin": dash.origin})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    # Signing out ends the session on the server: the old cookie no longer works.
    assert httpx.post(base + "api/signout", headers=good).status_code == 200
    assert post(good).status_code == 401


def test_every_answer_carries_a_strict_content_security_policy(dash: Dash, tab: Tab) -> None:
    page = tab.page
    response = page.goto(dash.url)
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # An inline script (as injected markup would carry) does not run.
    ran = page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.injected = 1";
                   document.body.append(s); return window.injected === 1; }"""
    )
    assert ran is False
    for name in ("main.js", "api.js", "style.css"):
        asset = httpx.get(f"{dash.url}static/{name}")
        assert asset.status_code == 200 and "content-security-policy" in asset.headers
    assert httpx.get(f"{dash.url}static/../app.py").status_code == 404
