"""A real headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright, on the real pages
of web/ served from localhost. Only two things are stand-ins: Dynamics' Xrm object and the module
that asks Firebase for a token (there is no network to FCM here)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port

WEB = REPO / "web"
CHROMIUM = os.environ.get("PUSH365_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Replaces web/firebase-messaging.js: the token comes from the test, or the call fails.
FIREBASE_STAND_IN = """
export async function getFcmToken(config, registration) {
  const test = self.__push365Test || {};
  if (!registration || !registration.active && !registration.installing && !registration.waiting) {
    throw new Error("no service worker registration");
  }
  if (test.failToken) throw new Error("token refused");
  return test.token;
}
export async function deleteFcmToken() { (self.__push365Test || {}).deleted = true; }
"""

# Dynamics' client API, as much of it as the page uses; calls are recorded for the test.
XRM_STAND_IN = """
window.__xrmCalls = [];
window.Xrm = {
  Utility: { getGlobalContext: () => ({
    userSettings: { userId: "{B1111111-2222-4333-8444-555555555502}", userName: "Bob Stone" },
    organizationSettings: { organizationId: "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162" },
  }) },
  WebApi: {
    createRecord: async (table, data) => {
      window.__xrmCalls.push({ op: "create", table, data });
      return { entityType: table, id: "5ab50000-0000-4000-8000-000000000001" };
    },
    deleteRecord: async (table, id) => {
      window.__xrmCalls.push({ op: "delete", table, id });
      return { entityType: table, id };
    },
  },
};
"""

_missing: list[str] = []


class _WebHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(WEB), **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/firebase-messaging.js":
            body = FIREBASE_STAND_IN.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def web_server() -> Iterator[str]:
    """web/ on localhost (a secure context for service workers)."""
    _WebHandler.extensions_map[".js"] = "text/javascript"
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _WebHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        _missing.append(f"{CHROMIUM} not found (make test installs Debian's chromium when it can)")
        if os.environ.get("PUSH365_REQUIRE_EMULATOR") == "1":
            pytest.fail(f"CHROMIUM MISSING: {_missing[-1]}")
        pytest.skip(f"NOT RUN - CHROMIUM MISSING: {_missing[-1]}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def context(browser: Any, web_server: str) -> Iterator[Any]:
    """A fresh browser profile with the Xrm stand-in on every page."""
    context = browser.new_context(viewport={"width": 640, "height": 360})
    context.add_init_script(XRM_STAND_IN)
    yield context
    context.close()


def xrm_calls(page: Any) -> list[dict[str, Any]]:
    return json.loads(page.evaluate("JSON.stringify(window.__xrmCalls)"))  # type: ignore[no-any-return]


def screenshot(page: Any, name: str) -> None:
    """Screenshots for the README, when PUSH365_SCREENSHOT_DIR says where."""
    folder = os.environ.get("PUSH365_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _missing:
        terminalreporter.write_line("!" * 78, red=True, bold=True)
        terminalreporter.write_line(
            f"CHROMIUM MISSING: the browser tests did NOT run. {_missing[0]}", red=True, bold=True
        )
        terminalreporter.write_line("!" * 78, red=True, bold=True)
