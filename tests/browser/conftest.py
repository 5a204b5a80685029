"""A real headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright, on the real pages
of web/ served from localhost at Dynamics' web resource path (``/WebResources/p365_/``).

Stand-ins, and only these: the module that asks Firebase for a token (there is no network to
FCM here); ``ClientGlobalContext.js.aspx`` (the signed-in user, read from a session cookie the
test sets, as Dynamics reads its own); and Dataverse's Web API for ``p365_subscriptions``, which
keeps rows in memory and, like the webhook steps the administrator guide registers, posts each
Create, Update and Delete as a Dataverse body to the real subscribe and unsubscribe functions when a
test points it at a running stack.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, example, free_port
from tests.stack import call

WEB = REPO / "web"
FOLDER = "/WebResources/p365_"
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
BOB = "b1111111-2222-4333-8444-555555555502"
ALICE = "a1111111-2222-4333-8444-555555555501"
NAMES = {BOB: "Bob Stone", ALICE: "Alice Park"}

# Replaces web/firebase-messaging.js: the token comes from the test, or the call fails.
FIREBASE_STAND_IN = """
export const TOKEN_KIND = "registration_token";
export async function messagingSupported() { return !(self.__push365Test || {}).unsupported; }
export async function getFcmToken(config, registration) {
  const test = self.__push365Test || {};
  if (!registration || !registration.active && !registration.installing && !registration.waiting) {
    throw new Error("no service worker registration");
  }
  if (test.failToken) throw new Error("token refused");
  test.tokenCalls = (test.tokenCalls || 0) + 1;
  test.firebaseApiKey = config.firebase.apiKey;
  test.vapidKey = config.vapidKey;
  return test.token;
}
export async function deleteFcmToken() { (self.__push365Test || {}).deleted = true; }
"""

# ClientGlobalContext.js.aspx: the user of the session (a cookie here, Dynamics' own there).
GLOBAL_CONTEXT_STAND_IN = """
function GetGlobalContext() {
  const cookies = Object.fromEntries(document.cookie.split("; ").filter(Boolean)
    .map((c) => c.split("=").map(decodeURIComponent)));
  return {
    userSettings: { userId: "{" + cookies.dynamics_user.toUpperCase() + "}",
                    userName: cookies.dynamics_user_name },
    getClientUrl: () => location.origin,
  };
}
"""

_missing: list[str] = []


@dataclass
class FakeDataverse:
    """``p365_subscriptions`` rows, and the webhook steps on them (when ``functions`` is set)."""

    organization_id: str = ""
    functions: tuple[str, str] | None = None  # (base URL, API key) of a running stack
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    firebase_config: dict[str, str] | None = None  # the p365_FirebaseConfig environment variable
    base_url: str | None = None  # the p365_BaseUrl environment variable

    def reset(self, organization_id: str = "", functions: tuple[str, str] | None = None) -> None:
        with self.lock:
            self.organization_id, self.functions = organization_id, functions
            self.rows.clear()
            self.calls.clear()
            self.firebase_config = None
            self.base_url = None

    def handle(self, method: str, row_id: str | None, user: str, body: dict[str, Any]) -> int:
        """One Web API request; its HTTP status. Webhook steps run before the answer."""
        with self.lock:
            if method == "POST":
                row_id = str(uuid.uuid4())
                self.rows[row_id] = {"user": user, **body}
                webhook = self._webhook("Create", row_id, user, body, subscribe=True)
            elif row_id not in self.rows:
                return 404
            elif method == "PATCH":
                self.rows[row_id].update(body)
                webhook = self._webhook("Update", row_id, user, body, subscribe=True)
            else:
                image = self.rows.pop(row_id)
                webhook = self._webhook("Delete", row_id, user, image, subscribe=False)
            status = self._post(webhook)
            self.calls.append(
                {"op": method, "row": row_id, "user": user, "data": body, "function": status}
            )
            return 204

    def _webhook(
        self, message: str, row_id: str, user: str, columns: dict[str, Any], subscribe: bool
    ) -> tuple[str, dict[str, Any]]:
        body = copy.deepcopy(
            example("subscription-create.json" if subscribe else "subscription-delete.json")
        )
        body.update(
            MessageName=message,
            InitiatingUserId=user,
            UserId=user,
            OrganizationId=self.organization_id,
            PrimaryEntityId=row_id,
            RequestId=str(uuid.uuid4()),
            OperationId=str(uuid.uuid4()),
        )
        attributes = [
            {"key": name, "value": value}
            for name, value in columns.items()
            if name.startswith("p365_")
        ]
        if subscribe:
            target = body["InputParameters"][0]["value"]
            target.update(Id=row_id, Attributes=attributes)
        else:
            body["InputParameters"][0]["value"]["Id"] = row_id
            body["PreEntityImages"][0]["value"].update(Id=row_id, Attributes=attributes)
        return ("subscribe" if subscribe else "unsubscribe"), body

    def _post(self, webhook: tuple[str, dict[str, Any]]) -> int | None:
        if self.functions is None:
            return None
        base, key = self.functions
        function, body = webhook
        status, _ = call(f"{base}/{function}", body, headers={"X-Push365-Key": key})
        return status


DATAVERSE = FakeDataverse()
_ROW = re.compile(r"^/api/data/v9\.2/p365_subscriptions(?:\(([0-9a-f-]{36})\))?$")


class _WebHandler(SimpleHTTPRequestHandler):
    global_context = True  # False: ClientGlobalContext.js.aspx is missing (the Xrm fallback)
    config: dict[str, Any] = {}  # values config.js is edited to have  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(WEB), **kwargs)

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/javascript") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/WebResources/ClientGlobalContext.js.aspx":
            if _WebHandler.global_context:
                self._send(200, GLOBAL_CONTEXT_STAND_IN.encode())
            else:
                self._send(404)
        elif path == f"{FOLDER}/firebase-messaging.js":
            self._send(200, FIREBASE_STAND_IN.encode())
        elif path == f"{FOLDER}/config.js" and _WebHandler.config:
            # config.js as an administrator edits it for their environment.
            edited = f"Object.assign(self.PUSH365_CONFIG, {json.dumps(_WebHandler.config)});"
            self._send(200, (WEB / "config.js").read_bytes() + edited.encode())
        elif path.startswith(f"{FOLDER}/"):
            self.path = self.path[len(FOLDER) :]
            super().do_GET()
        elif path == "/main.aspx":
            self._send(200, b"<title>Dynamics 365</title>", "text/html")
        elif path == "/api/data/v9.2/RetrieveEnvironmentVariableValue(DefinitionSchemaName=@p1)":
            # Dataverse's function for an environment variable's current value ({"Value"}).
            variable = urllib.parse.unquote(self.path.split("?", 1)[1])
            values = {
                "@p1='p365_FirebaseConfig'": DATAVERSE.firebase_config
                and json.dumps(DATAVERSE.firebase_config),
                "@p1='p365_BaseUrl'": DATAVERSE.base_url,
            }
            if values.get(variable):
                answer = {"Value": values[variable]}
                self._send(200, json.dumps(answer).encode(), "application/json")
            else:
                self._send(404)
        else:
            self._send(404)

    def _web_api(self, method: str) -> None:
        match = _ROW.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        cookies = dict(
            urllib.parse.unquote(c).split("=", 1)
            for c in (self.headers.get("Cookie") or "").split("; ")
            if "=" in c
        )
        if match is None or "dynamics_user" not in cookies:
            self._send(404 if match is None else 401)
            return
        before = set(DATAVERSE.rows)
        status = DATAVERSE.handle(method, match.group(1), cookies["dynamics_user"], body)
        self.send_response(status)
        created = set(DATAVERSE.rows) - before
        if method == "POST" and created:
            origin = f"http://{self.headers['Host']}"
            (row,) = created
            self.send_header("OData-EntityId", f"{origin}/api/data/v9.2/p365_subscriptions({row})")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self._web_api("POST")

    def do_PATCH(self) -> None:
        self._web_api("PATCH")

    def do_DELETE(self) -> None:
        self._web_api("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def web_origin() -> Iterator[str]:
    """The web resources on localhost (a secure context for service workers)."""
    _WebHandler.extensions_map[".js"] = "text/javascript"
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _WebHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def web_server(web_origin: str) -> str:
    """The web resource folder's URL, as Dynamics serves it: ``{origin}/WebResources/p365_``."""
    return f"{web_origin}{FOLDER}"


@pytest.fixture
def dataverse() -> Iterator[FakeDataverse]:
    """The Web API stand-in, empty; not connected to any function until a test says so."""
    DATAVERSE.reset()
    _WebHandler.global_context, _WebHandler.config = True, {}
    yield DATAVERSE
    DATAVERSE.reset()
    _WebHandler.global_context, _WebHandler.config = True, {}


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
def context(browser: Any, web_origin: str, dataverse: FakeDataverse) -> Iterator[Any]:
    """A fresh browser profile, signed in to "Dynamics" as Bob."""
    context = browser.new_context(viewport={"width": 640, "height": 360})
    sign_in(context, web_origin, BOB)
    yield context
    context.close()


def sign_in(context: Any, origin: str, user_id: str) -> None:
    """The Dynamics session of this browser profile is now ``user_id``'s."""
    context.add_cookies(
        [
            {"name": "dynamics_user", "value": user_id, "url": origin},
            {
                "name": "dynamics_user_name",
                "value": urllib.parse.quote(NAMES[user_id]),
                "url": origin,
            },
        ]
    )


def edit_config(**values: Any) -> None:
    """config.js as an administrator edits it, until the test ends (``dataverse`` resets it)."""
    _WebHandler.config = values


def set_test(context: Any, **test: Any) -> None:
    """What the Firebase stand-in does in pages opened from now on (the last call wins)."""
    context.add_init_script(f"self.__push365Test = {json.dumps(test)};")


def open_page(context: Any, web_server: str) -> Any:
    """The subscribe page, once it has shown its state and finished its refresh."""
    page = context.new_page()
    page.goto(f"{web_server}/subscribe.html")
    page.wait_for_function("document.body.dataset.state !== 'working'")
    page.wait_for_function(
        "document.body.dataset.refreshed === 'true' || "
        "['unsupported', 'no-user'].includes(document.body.dataset.state)"
    )
    return page


def subscribed_page(context: Any, web_server: str, token: str) -> Any:
    """The subscribe page after turning notifications on with ``token``."""
    context.grant_permissions(["notifications"])
    set_test(context, token=token)
    page = open_page(context, web_server)
    page.click("#subscribe")
    wait_for_state(page, "subscribed")
    return page


def service_worker(context: Any) -> Any:
    """Push365's service worker in this browser profile."""
    return next(w for w in context.service_workers if w.url.endswith("/push365-sw.js"))


def wait_for_state(page: Any, state: str) -> None:
    page.wait_for_function(f"document.body.dataset.state === {json.dumps(state)}")


def state(page: Any) -> str:
    return str(page.evaluate("document.body.dataset.state"))


def stored_state(page: Any) -> dict[str, Any]:
    """What the page keeps in local storage, decoded."""
    raw = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    return {key: _decode(value) for key, value in json.loads(raw).items()}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def screenshot(page: Any, name: str) -> None:
    """Screenshots for the docs (docs/screenshots/), when PUSH365_SCREENSHOT_DIR says where."""
    folder = os.environ.get("PUSH365_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.fixture(scope="session")
def stack(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``python -m devstack`` (every function, its own emulator, the local FCM server), once for
    all the browser tests (it takes seconds to start); each test registers an organization of its
    own, reads only the FCM messages and output lines that came after it started, and leaves the
    FCM server's faults as it found them."""
    from tests.stack import running_stack

    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def tenant(stack: Any, dataverse: FakeDataverse) -> Iterator[Any]:
    """A new organization on the stack, with the Web API stand-in's webhooks pointed at it;
    erased after the test, which frees its browser tokens for the next test's organization (a
    token belongs to one organization at a time)."""
    from tests.browser.delivery import erase_tenant, register_tenant

    registered = register_tenant(stack)
    dataverse.reset(registered.organization_id, (stack.base, registered.key))
    yield registered
    erase_tenant(registered)
