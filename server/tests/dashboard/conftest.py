"""Fixtures of the dashboard tests: a real server with API keys on and its
HTTP side serving /dashboard/, driven by a real headless Chromium (the
distribution's, through Playwright). A missing browser fails, never skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, start_server
from ..security.conftest import As, new_key, secure_settings, tenant_name

CHROMIUM = os.environ.get("MNEMO_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Dash:
    """The dashboard of one server, and keys of one tenant (and of another)."""

    server: RunningServer
    tenant: str
    admin: As
    writer: As
    reader: As
    #: A writer of another tenant, whose memories the dashboard must never show.
    stranger: As

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.app.http_port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/dashboard/"


@pytest.fixture(scope="session")
def dash_server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("dashboard")
    settings = secure_settings(data, http={"address": "127.0.0.1:0"}, metrics={"address": "127.0.0.1:0"})
    running = start_server(settings, embedder)
    yield running
    running.stop()


@pytest.fixture
def dash(dash_server: RunningServer) -> Dash:
    """A fresh tenant with an admin, a writer and a reader key, and a stranger."""
    tenant = tenant_name()
    return Dash(
        dash_server,
        tenant,
        admin=new_key(dash_server, "admin", tenant=tenant),
        writer=new_key(dash_server, "writer", tenant=tenant),
        reader=new_key(dash_server, "reader", tenant=tenant),
        stranger=new_key(dash_server, "writer", tenant=tenant_name()),
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API runs an event loop
    in this thread while it is open, which later asyncio tests cannot share."""
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"no browser at {CHROMIUM}: bash .ci/install --dev installs chromium (apt-get)")
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root here, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser page with its context, and the dialogs and console errors it saw."""

    page: Any
    context: Any
    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen = Tab(page, context, [], [])

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    yield seen
    context.close()


def sign_in(page: Any, dash: Dash, key: str | None) -> None:
    """Opens the dashboard and signs in with `key`; waits for the overview."""
    page.goto(dash.url)
    page.fill("#sign-in-key", key or "")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#main:not([hidden])")
