"""The setup command against a fake Dataverse and a fake Push365 at the HTTP boundary.

The fake Dataverse answers in the shapes recorded from Microsoft's documentation in
``tests/data/dataverse_webapi.json`` (each with its source) and keeps the rows it is given, so a
second run sees what the first created. No ``mock.patch``: the setup gets a ``Transport``.
"""

from __future__ import annotations

import copy
import json
import re
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from dynamics.setup import __main__ as command
from dynamics.setup import plan
from dynamics.setup.dataverse import API_PATH, DataverseError, WebApi
from dynamics.setup.push365 import KEY_HEADER, Push365, Push365Error
from dynamics.setup.run import Setup, SetupError, State, base_url_from_environment
from dynamics.setup.transport import HttpRequest, HttpResponse
from push365.users.dataverse import COLUMNS as USER_COLUMNS

RECORDED = json.loads(
    (Path(__file__).parent.parent / "data" / "dataverse_webapi.json").read_text("utf-8")
)
ENVIRONMENT = "https://contoso.crm4.dynamics.com"
BASE_URL = "https://europe-west1-demo.cloudfunctions.net"
GUIDE = Path(__file__).resolve().parent.parent.parent / "docs" / "dynamics.md"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
TOKEN = "eyJ-test-access-token"
WHO = RECORDED["WhoAmI"]["response"]["body"]
ORGANIZATION_ID = WHO["OrganizationId"]
ADMIN_ID = WHO["UserId"]


def _id(*names: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(names)))


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> HttpResponse:
    data = json.dumps(body).encode() if body is not None else b""
    return HttpResponse(status, {k.lower(): v for k, v in (headers or {}).items()}, data)


class FakeDataverse:
    """Dataverse's Web API for the requests the setup makes, keeping rows between runs."""

    ID_COLUMN: ClassVar[dict[str, str]] = {
        "serviceendpoints": "serviceendpointid",
        "sdkmessageprocessingsteps": "sdkmessageprocessingstepid",
        "sdkmessageprocessingstepimages": "sdkmessageprocessingstepimageid",
    }

    def __init__(self, users: int = 3) -> None:
        self.base_url = RECORDED["RetrieveEnvironmentVariableValue"]["response"]["body"]["Value"]
        messages = ("Create", "Update", "Delete", "SetState", "Win")
        self.rows: dict[str, list[dict[str, Any]]] = {
            "sdkmessages": [{"sdkmessageid": _id("message", m), "name": m} for m in messages],
            "sdkmessagefilters": [
                {
                    "sdkmessagefilterid": _id("filter", table, m),
                    "primaryobjecttypecode": table,
                    "_sdkmessageid_value": _id("message", m),
                }
                for table in ("systemuser", "p365_subscription", "p365_notification", "opportunity")
                for m in messages
            ],
            "serviceendpoints": [],
            "sdkmessageprocessingsteps": [],
            "sdkmessageprocessingstepimages": [],
        }
        # The rule tables' columns (readable or not), as their definitions list them.
        self.columns: dict[str, dict[str, bool]] = {
            "opportunity": dict.fromkeys(
                (
                    "opportunityid",
                    "name",
                    "statuscode",
                    "estimatedvalue",
                    "estimatedclosedate",
                    "modifiedby",
                    "customerid",
                    "ownerid",
                ),
                True,
            )
            | {"p365_secret": False},
        }
        self.users = [
            {
                "systemuserid": ADMIN_ID if n == 0 else _id("user", str(n)),
                "domainname": f"user{n}@contoso.com",
                "fullname": f"User {n}",
                "internalemailaddress": f"user{n}@contoso.com",
                "windowsliveid": f"user{n}@contoso.onmicrosoft.com",
                "mobilephone": None,
                "isdisabled": False,
            }
            for n in range(users)
        ] + [{"systemuserid": _id("user", "disabled"), "fullname": "Gone", "isdisabled": True}]

    def writes(self) -> dict[str, list[dict[str, Any]]]:
        return copy.deepcopy(
            {name: rows for name, rows in self.rows.items() if name in self.ID_COLUMN}
        )

    def handle(self, request: HttpRequest) -> HttpResponse:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["OData-Version"] == "4.0"
        parts = urlsplit(request.url)
        assert parts.path.startswith(API_PATH)
        path = unquote(parts.path.removeprefix(API_PATH))
        query = dict(parse_qsl(parts.query))
        if request.method == "GET":
            return self._get(path, query, request)
        if request.method == "POST":
            return self._create(path, request.json())
        if request.method == "PATCH":
            return self._update(path, request)
        if request.method == "DELETE":
            return self._delete(path)
        raise AssertionError(f"unexpected {request.method}")

    def _get(self, path: str, query: dict[str, str], request: HttpRequest) -> HttpResponse:
        if path == "WhoAmI":
            return _response(200, RECORDED["WhoAmI"]["response"]["body"])
        if path == "RetrieveEnvironmentVariableValue(DefinitionSchemaName=@p1)":
            assert query == {"@p1": "'p365_BaseUrl'"}
            body = copy.deepcopy(RECORDED["RetrieveEnvironmentVariableValue"]["response"]["body"])
            body["Value"] = self.base_url
            return _response(200, body)
        if path == "RetrieveCurrentOrganization(AccessType=@p1)":
            assert query == {"@p1": "Microsoft.Dynamics.CRM.EndpointAccessType'Default'"}
            return _response(200, RECORDED["RetrieveCurrentOrganization"]["response"]["body"])
        if path == f"organizations({ORGANIZATION_ID})":
            assert query == {"$select": "languagecode"}
            return _response(200, RECORDED["retrieve_row"]["response"]["body"])
        if path == f"systemusers({ADMIN_ID})":
            admin = self.users[0]
            return _response(
                200,
                {
                    "@odata.context": f"{ENVIRONMENT}{API_PATH}$metadata#systemusers/$entity",
                    **{column: admin[column] for column in query["$select"].split(",")},
                },
            )
        if path == "systemusers":
            return self._users_page(query, request)
        definition = re.fullmatch(r"EntityDefinitions\(LogicalName='(\w+)'\)/Attributes", path)
        if definition:
            return self._attributes(definition.group(1), query)
        rows = [row for row in self.rows[path] if _matches(row, query.get("$filter", ""))]
        columns = query["$select"].split(",")
        if path in self.ID_COLUMN and path != "serviceendpoints":
            readable = RECORDED[path.removesuffix("s")]["readable_columns"]
            assert set(columns) <= set(readable), set(columns) - set(readable)
        return _response(
            200,
            {
                "@odata.context": f"{ENVIRONMENT}{API_PATH}$metadata#{path}({query['$select']})",
                "value": [{c: row.get(c) for c in columns} for row in rows],
            },
        )

    def _attributes(self, table: str, query: dict[str, str]) -> HttpResponse:
        shape = RECORDED["attribute_definitions"]
        assert query == {"$select": "LogicalName,IsValidForRead"}
        if table not in self.columns:
            return _response(404, RECORDED["error"]["response"]["body"])
        sample = shape["response"]["body"]["value"][0]
        return _response(
            200,
            {
                "@odata.context": shape["response"]["body"]["@odata.context"].replace(
                    "opportunity", table
                ),
                "value": [
                    sample
                    | {
                        "LogicalName": name,
                        "IsValidForRead": readable,
                        "MetadataId": _id(table, name),
                    }
                    for name, readable in self.columns[table].items()
                ],
            },
        )

    def _users_page(self, query: dict[str, str], request: HttpRequest) -> HttpResponse:
        size = int(request.headers["Prefer"].removeprefix("odata.maxpagesize="))
        enabled = [user for user in self.users if _matches(user, query["$filter"])]
        start = int(query.get("$skiptoken", "0"))
        columns = query["$select"].split(",")
        body: dict[str, Any] = {
            "@odata.context": RECORDED["paging"]["response"]["body"]["@odata.context"],
            "value": [{c: user.get(c) for c in columns} for user in enabled[start : start + size]],
        }
        if start + size < len(enabled):
            body["@odata.nextLink"] = (
                f"{ENVIRONMENT}{API_PATH}systemusers?$select={query['$select']}"
                f"&$filter=isdisabled%20eq%20false&$skiptoken={start + size}"
            )
        return _response(200, body, {"Preference-Applied": f"odata.maxpagesize={size}"})

    def _create(self, entity_set: str, body: dict[str, Any]) -> HttpResponse:
        documented = set(RECORDED[entity_set.removesuffix("s")]["body_columns"])
        assert set(body) <= documented, set(body) - documented
        row_id = _id(entity_set, json.dumps(body, sort_keys=True))
        row = {self.ID_COLUMN[entity_set]: row_id}
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                row[f"_{name.removesuffix('@odata.bind')}_value"] = GUID.search(value).group(0)  # type: ignore[union-attr]
            else:
                row[name] = value
        self.rows[entity_set].append(row)
        location = f"{ENVIRONMENT}{API_PATH}{entity_set}({row_id})"
        return _response(204, None, {"OData-Version": "4.0", "OData-EntityId": location})

    def _update(self, path: str, request: HttpRequest) -> HttpResponse:
        assert request.headers["If-Match"] == "*"
        entity_set, row_id = re.fullmatch(r"(\w+)\(([0-9a-f-]+)\)", path).groups()  # type: ignore[union-attr]
        body = request.json()
        assert set(body) <= set(RECORDED[entity_set.removesuffix("s")]["body_columns"])
        row = next(r for r in self.rows[entity_set] if r[self.ID_COLUMN[entity_set]] == row_id)
        row.update(body)
        return _response(204, None, {"OData-Version": "4.0"})

    def _delete(self, path: str) -> HttpResponse:
        entity_set, row_id = re.fullmatch(r"(\w+)\(([0-9a-f-]+)\)", path).groups()  # type: ignore[union-attr]
        assert entity_set == RECORDED["delete"]["request"]["path"].split("(")[0], "images only"
        rows = self.rows[entity_set]
        kept = [r for r in rows if r[self.ID_COLUMN[entity_set]] != row_id]
        if len(kept) == len(rows):
            return _response(404, RECORDED["error"]["response"]["body"])
        self.rows[entity_set] = kept
        return _response(204, None, {"OData-Version": "4.0"})


def _matches(row: dict[str, Any], expression: str) -> bool:
    for condition in filter(None, expression.split(" and ")):
        starts = re.fullmatch(r"startswith\((\w+),'(.*)'\)", condition)
        if starts:
            if not str(row.get(starts.group(1)) or "").startswith(starts.group(2)):
                return False
            continue
        name, operator, value = condition.split(" ", 2)
        assert operator == "eq"
        if value.startswith("'"):
            wanted: object = value[1:-1].replace("''", "'")
        elif value in ("true", "false"):
            wanted = value == "true"
        else:
            wanted = value
        if row.get(name) != wanted:
            return False
    return True


class FakePush365:
    """Push365's register function as the setup uses it."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.rules = rules
        self.key = ""
        self.organization: dict[str, Any] | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.registrations = 0

    def handle(self, request: HttpRequest) -> HttpResponse:
        route = urlsplit(request.url).path
        key = request.headers.get(KEY_HEADER)
        if route == "/push365-register" and request.method == "POST":
            body = request.json()
            assert set(body) == ({"organization"} if key else {"organization", "admins"})
            if self.organization is None:
                self.organization = body
                self.key = f"p365.{ORGANIZATION_ID}.s3cr3t-{self.registrations}"
                self.registrations += 1
                return _response(201, {"organization_id": ORGANIZATION_ID, "api_key": self.key})
            if key != self.key:
                return _response(409, {"error": {"code": "conflict", "message": "..."}})
            self.organization = self.organization | body  # admins, when sent, replace the list
            return _response(200, {"organization_id": ORGANIZATION_ID})
        if key != self.key or not key:
            return _response(401, {"error": {"code": "unauthorized", "message": "..."}})
        if route == "/push365-register/rules" and request.method == "GET":
            return _response(200, {"rules": self.rules})
        if route == "/push365-register/users" and request.method == "POST":
            users = request.json()["users"]
            assert 1 <= len(users) <= 500
            for user in users:
                self.users[user["id"]] = user
            return _response(200, {"upserted": len(users)})
        raise AssertionError(f"unexpected {request.method} {route}")


class Wire:
    """The HTTP boundary: routes each request to its fake, records it, fails one on demand."""

    def __init__(self, dataverse: FakeDataverse, push365: FakePush365) -> None:
        self.dataverse = dataverse
        self.push365 = push365
        self.requests: list[HttpRequest] = []
        self.pauses: list[float] = []
        self.fail: Callable[[HttpRequest], bool] = lambda request: False
        self.answer_first: dict[int, HttpResponse] = {}  # request number -> a canned answer

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if len(self.requests) in self.answer_first:
            return self.answer_first[len(self.requests)]
        if self.fail(request):
            return _response(503, RECORDED["error"]["response"]["body"])
        if request.url.startswith(ENVIRONMENT):
            return self.dataverse.handle(request)
        assert request.url.startswith(BASE_URL)
        return self.push365.handle(request)

    def transcript(self, start: int = 0) -> list[str]:
        lines = []
        for request in self.requests[start:]:
            parts = urlsplit(request.url)
            where = "dataverse" if request.url.startswith(ENVIRONMENT) else "push365"
            path = parts.path.removeprefix(API_PATH) if where == "dataverse" else parts.path
            query = unquote(parts.query)
            line = f"{request.method} {where} {path}{'?' + query if query else ''}"
            lines.append(GUID.sub("<id>", line))
        return lines


RULES: list[dict[str, Any]] = [  # as GET /register/rules answers them
    {
        "table": "opportunity",
        "message": "update",
        "recipients": ["ownerid"],
        "title": "{name} is {statuscode}",
        "body": "Worth {estimatedvalue}, changed by {modifiedby}",
        "link": "record",
        "stage": 40,
        "max_depth": 1,
    },
    {
        "table": "opportunity",
        "message": "delete",
        "recipients": ["ownerid", "context.initiatinguserid"],
        "title": "{name} was deleted",
        "body": "It was owned by {ownerid}.",
        "link": None,
        "stage": 40,
        "max_depth": 1,
    },
    {
        "table": "opportunity",
        "message": "update",
        "recipients": [ADMIN_ID],
        "title": "again: one step",
        "body": "For {CustomerId}",
        "link": None,
        "stage": 40,
        "max_depth": 1,
    },
]
UPDATE_COLUMNS = "customerid,estimatedvalue,modifiedby,name,ownerid,statuscode"
"""The columns the two Update rules reference, together (sorted)."""


@pytest.fixture
def wire() -> Wire:
    return Wire(FakeDataverse(users=3), FakePush365(RULES))


def _setup(wire: Wire, state: Path, page_size: int = 2) -> Setup:
    return Setup(
        WebApi(wire, ENVIRONMENT, lambda: TOKEN, sleep=wire.pauses.append),
        Push365(wire, BASE_URL, "push365-", sleep=wire.pauses.append),
        State.load(state),
        page_size,
    )


def _documented_requests() -> list[str]:
    text = GUIDE.read_text("utf-8")  # the administrator guide
    block = text.split("<!-- setup-requests -->", 1)[1].split("```", 2)[1]
    return [line.strip() for line in block.splitlines()[1:] if line.strip()]


def test_a_full_run_makes_exactly_the_documented_requests_in_order(
    wire: Wire, tmp_path: Path
) -> None:
    report = _setup(wire, tmp_path / "state.json").run()
    assert wire.transcript() == _documented_requests()
    assert report.registered == "registered"
    assert len(report.created) == 4 + 7 + 2 + 4  # endpoints, fixed steps, rule steps, images
    assert report.users == 3
    assert sorted(wire.push365.users) == sorted(
        str(u["systemuserid"]) for u in wire.dataverse.users if not u["isdisabled"]
    )
    registration = wire.push365.organization
    assert registration is not None
    assert registration["organization"] == {
        "id": ORGANIZATION_ID,
        "unique_name": "unq3f2a9c1e5b7d4e219a0c1d2e3f405",
        "name": "Contoso",
        "language_code": 1033,
        "url": ENVIRONMENT,
    }
    assert registration["admins"][0]["email"] == "user0@contoso.com"


def test_endpoints_carry_the_key_in_a_header_and_steps_never_target_deliver(
    wire: Wire, tmp_path: Path
) -> None:
    _setup(wire, tmp_path / "state.json").run()
    endpoints = {row["name"]: row for row in wire.dataverse.rows["serviceendpoints"]}
    assert {name: row["url"] for name, row in endpoints.items()} == {
        "Push365 users": f"{BASE_URL}/push365-register/users",
        "Push365 subscribe": f"{BASE_URL}/push365-subscribe",
        "Push365 unsubscribe": f"{BASE_URL}/push365-unsubscribe",
        "Push365 send": f"{BASE_URL}/push365-send",
    }
    for row in endpoints.values():
        assert row["contract"] == 8  # webhook
        assert row["authtype"] == 5  # HttpHeader
        assert row["authvalue"] == (
            f'<settings><setting name="X-Push365-Key" value="{wire.push365.key}" /></settings>'
        )
    assert not any("deliver" in row["url"] for row in endpoints.values())
    steps = {row["name"]: row for row in wire.dataverse.rows["sdkmessageprocessingsteps"]}
    assert set(steps) == {
        step.name
        for step in plan.steps([("opportunity", "update", 40), ("opportunity", "delete", 40)])
    }
    by_id = {row["serviceendpointid"]: row["name"] for row in endpoints.values()}
    assert (
        by_id[steps["Push365: Delete of p365_subscription"]["_eventhandler_serviceendpoint_value"]]
        == "Push365 unsubscribe"
    )
    assert steps["Push365: Update of p365_subscription"]["filteringattributes"] == "p365_instanceid"
    assert set(steps["Push365: Update of systemuser"]["filteringattributes"].split(",")) == {
        *USER_COLUMNS,
        "isdisabled",
    }
    assert all(row["mode"] == 1 and row["stage"] == 40 for row in steps.values())
    images = wire.dataverse.rows["sdkmessageprocessingstepimages"]
    unsubscribe_step = steps["Push365: Delete of p365_subscription"]["sdkmessageprocessingstepid"]
    pre_image = next(
        i for i in images if i["_sdkmessageprocessingstepid_value"] == unsubscribe_step
    )
    assert pre_image["imagetype"] == 0
    assert pre_image["entityalias"] == "PreImage"
    assert pre_image["messagepropertyname"] == "Target"
    assert pre_image["attributes"] == "p365_instanceid"


def test_a_second_run_changes_nothing(wire: Wire, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    _setup(wire, state).run()
    dataverse_before = wire.dataverse.writes()
    push365_before = copy.deepcopy((wire.push365.organization, wire.push365.users))
    start = len(wire.requests)
    report = _setup(wire, state).run()
    assert [r.method for r in wire.requests[start:] if r.url.startswith(ENVIRONMENT)] == [
        "GET"
    ] * len([r for r in wire.requests[start:] if r.url.startswith(ENVIRONMENT)])
    assert wire.dataverse.writes() == dataverse_before
    assert (wire.push365.organization, wire.push365.users) == push365_before
    assert wire.push365.registrations == 1  # registered once; the second run used the key
    assert report.registered == "updated"
    assert report.created == []
    assert report.updated == []
    assert len(report.unchanged) == 4 + 9 + 4
    assert report.removed == []


@pytest.mark.parametrize(
    ("failing", "nth"),
    [
        ("/api/data/v9.2/sdkmessageprocessingsteps", 4),
        ("/api/data/v9.2/sdkmessageprocessingstepimages", 3),
        ("/push365-register/users", 2),
    ],
    ids=["the fourth step", "the third image", "the second page of users"],
)
def test_a_failure_halfway_is_resumable(wire: Wire, tmp_path: Path, failing: str, nth: int) -> None:
    state = tmp_path / "state.json"
    seen = {"posts": 0}

    def fail(request: HttpRequest) -> bool:  # from the nth on, every attempt, retries included
        if request.method == "POST" and urlsplit(request.url).path == failing:
            seen["posts"] += 1
            return seen["posts"] >= nth
        return False

    wire.fail = fail
    with pytest.raises((DataverseError, Push365Error)) as stopped:
        _setup(wire, state).run()
    assert "503" in str(stopped.value)
    assert len(wire.pauses) == 3  # retried three times, then stopped
    assert wire.push365.key not in str(stopped.value)
    wire.fail = lambda request: False
    report = _setup(wire, state).run()
    assert report.registered == "updated"  # the key kept in the state file
    complete = Wire(FakeDataverse(users=3), FakePush365(RULES))
    _setup(complete, tmp_path / "other.json").run()

    def shape(fake: FakeDataverse) -> dict[str, list[tuple[Any, ...]]]:
        return {
            name: sorted(
                tuple(
                    sorted(
                        (k, str(v))
                        for k, v in row.items()
                        if not k.endswith("id") and not k.endswith("_value") and k != "authvalue"
                    )
                )
                for row in rows
            )
            for name, rows in fake.writes().items()
        }

    assert shape(wire.dataverse) == shape(complete.dataverse)  # nothing twice, nothing missing
    assert sorted(wire.push365.users) == sorted(complete.push365.users)
    assert wire.push365.registrations == 1


def test_the_state_file_is_private_and_nothing_prints_the_key(wire: Wire, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    report = _setup(wire, state).run()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text("utf-8"))["api_key"] == wire.push365.key
    text = "\n".join(report.lines())
    assert wire.push365.key not in text
    assert TOKEN not in text


def test_a_registered_organization_without_its_key_stops_with_a_clear_error(
    wire: Wire, tmp_path: Path
) -> None:
    _setup(wire, tmp_path / "state.json").run()
    with pytest.raises(SetupError, match="registered with Push365 already") as stopped:
        _setup(wire, tmp_path / "lost.json").run()
    assert wire.push365.key not in str(stopped.value)
    state = tmp_path / "other-org.json"
    State(state, organization_id=str(uuid.uuid4()), api_key="x").save()
    with pytest.raises(SetupError, match="another organization"):
        _setup(wire, state).run()


def test_a_key_issued_again_is_written_to_endpoints_that_already_exist(
    wire: Wire, tmp_path: Path
) -> None:
    _setup(wire, tmp_path / "state.json").run()
    wire.push365.organization = None  # the organization was erased and registers anew
    _setup(wire, tmp_path / "fresh.json").run()
    for row in wire.dataverse.rows["serviceendpoints"]:
        assert wire.push365.key in row["authvalue"]
    assert len(wire.dataverse.rows["serviceendpoints"]) == 4


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        command.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for words in ("--environment", "--base-url", "device code", "X-Push365-Key", "pre-image"):
        assert words in out


def test_the_user_columns_are_the_ones_push365_keeps() -> None:
    assert set(plan.USER_COLUMNS) == set(USER_COLUMNS)


def test_the_base_url_comes_from_the_environment_variable(wire: Wire) -> None:
    dataverse = WebApi(wire, ENVIRONMENT, lambda: TOKEN, sleep=wire.pauses.append)
    assert base_url_from_environment(dataverse) == BASE_URL
    assert wire.transcript() == [
        "GET dataverse RetrieveEnvironmentVariableValue(DefinitionSchemaName=@p1)"
        "?@p1='p365_BaseUrl'"
    ]
    wire.dataverse.base_url = None
    with pytest.raises(SetupError, match="p365_BaseUrl"):
        base_url_from_environment(dataverse)


def test_a_throttled_request_is_sent_again_after_retry_after(wire: Wire, tmp_path: Path) -> None:
    throttled = _response(429, RECORDED["error"]["response"]["body"], {"Retry-After": "7"})
    wire.answer_first = {1: throttled, 3: _response(503, None)}
    report = _setup(wire, tmp_path / "state.json").run()
    assert report.registered == "registered"
    assert wire.pauses == [7.0, 1.0]  # Retry-After, else 1 s doubling
    assert wire.transcript()[:4] == [
        "GET dataverse WhoAmI",
        "GET dataverse WhoAmI",
        "GET dataverse RetrieveCurrentOrganization(AccessType=@p1)"
        "?@p1=Microsoft.Dynamics.CRM.EndpointAccessType'Default'",
        "GET dataverse RetrieveCurrentOrganization(AccessType=@p1)"
        "?@p1=Microsoft.Dynamics.CRM.EndpointAccessType'Default'",
    ]


# -- images: exactly the columns the rules reference ------------------------------------------


def _steps_by_name(fake: FakeDataverse) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in fake.rows["sdkmessageprocessingsteps"]}


def _images(fake: FakeDataverse, step_name: str) -> dict[str, dict[str, Any]]:
    """The images on a step, by alias: (imagetype, messagepropertyname, attributes)."""
    step_id = _steps_by_name(fake)[step_name]["sdkmessageprocessingstepid"]
    return {
        row["entityalias"]: {
            "imagetype": row["imagetype"],
            "messagepropertyname": row["messagepropertyname"],
            "attributes": row["attributes"],
        }
        for row in fake.rows["sdkmessageprocessingstepimages"]
        if row["_sdkmessageprocessingstepid_value"] == step_id
    }


def _dataverse_writes(wire: Wire, start: int) -> list[str]:
    return [
        line
        for line in wire.transcript(start)
        if line.split(" ", 2)[1] == "dataverse" and not line.startswith("GET ")
    ]


def test_each_rule_step_gets_images_holding_exactly_the_columns_its_rules_reference(
    wire: Wire, tmp_path: Path
) -> None:
    _setup(wire, tmp_path / "state.json").run()
    # Update: the union of both Update rules' placeholders and recipients, before and after
    # the change (the Target carries only what changed, and lookups without their names).
    assert _images(wire.dataverse, "Push365: Update of opportunity") == {
        "PreImage": {"imagetype": 0, "messagepropertyname": "Target", "attributes": UPDATE_COLUMNS},
        "PostImage": {
            "imagetype": 1,
            "messagepropertyname": "Target",
            "attributes": UPDATE_COLUMNS,
        },
    }
    # Delete: a pre-image only (there is no row after a Delete), with the Delete rule's columns.
    assert _images(wire.dataverse, "Push365: Delete of opportunity") == {
        "PreImage": {"imagetype": 0, "messagepropertyname": "Target", "attributes": "name,ownerid"}
    }
    # The fixed steps keep what they had: only unsubscribe's pre-image of p365_instanceid.
    for name in _steps_by_name(wire.dataverse):
        if "opportunity" not in name and name != "Push365: Delete of p365_subscription":
            assert _images(wire.dataverse, name) == {}, name
    assert _images(wire.dataverse, "Push365: Delete of p365_subscription") == {
        "PreImage": {
            "imagetype": 0,
            "messagepropertyname": "Target",
            "attributes": "p365_instanceid",
        }
    }
    image_bodies = [
        json.loads(request.body or b"{}")
        for request in wire.requests
        if request.method == "POST" and request.url.endswith("/sdkmessageprocessingstepimages")
    ]
    assert all(
        set(body) == set(RECORDED["sdkmessageprocessingstepimage"]["body_columns"])
        for body in image_bodies
    )
    assert all(body["name"] == body["entityalias"] for body in image_bodies)


@pytest.mark.parametrize(
    ("message", "stage", "expected"),
    [
        ("create", 40, {"PostImage": (1, "Id")}),  # no pre-image: the row does not exist yet
        ("update", 20, {"PreImage": (0, "Target")}),  # no post-image before the operation
        ("update", 10, {"PreImage": (0, "Target")}),
        ("delete", 40, {"PreImage": (0, "Target")}),
        ("setstate", 40, {"PreImage": (0, "EntityMoniker"), "PostImage": (1, "EntityMoniker")}),
        ("win", 40, {}),  # Win carries no images
    ],
)
def test_images_follow_what_dataverse_allows_for_the_message_and_stage(
    tmp_path: Path, message: str, stage: int, expected: dict[str, tuple[int, str]]
) -> None:
    rule = {"table": "opportunity", "message": message, "stage": stage, "recipients": ["ownerid"]}
    wire = Wire(FakeDataverse(users=1), FakePush365([rule | {"title": "{name}"}]))
    _setup(wire, tmp_path / "state.json").run()
    step = plan.Step(plan.SEND, "opportunity", plan.message_name(message), stage).name
    images = _images(wire.dataverse, step)
    assert {alias: (i["imagetype"], i["messagepropertyname"]) for alias, i in images.items()} == (
        expected
    )
    assert all(i["attributes"] == "name,ownerid" for i in images.values())


def test_a_run_after_the_rules_change_corrects_the_images_and_nothing_else(
    wire: Wire, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    _setup(wire, state).run()
    before = wire.dataverse.writes()
    # The second Update rule goes (customerid with it); the first now names the close date.
    wire.push365.rules = [
        RULES[0] | {"body": "Worth {estimatedvalue}, closing {estimatedclosedate}"},
        RULES[1],
    ]
    start = len(wire.requests)
    report = _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == [
        "PATCH dataverse sdkmessageprocessingstepimages(<id>)",
        "PATCH dataverse sdkmessageprocessingstepimages(<id>)",
    ]
    assert report.updated == [
        "pre-image of Push365: Update of opportunity",
        "post-image of Push365: Update of opportunity",
    ]
    assert report.created == report.removed == []
    columns = "estimatedclosedate,estimatedvalue,name,ownerid,statuscode"
    for image in _images(wire.dataverse, "Push365: Update of opportunity").values():
        assert image["attributes"] == columns
    patches = [json.loads(r.body or b"{}") for r in wire.requests[start:] if r.method == "PATCH"]
    assert patches == [{"attributes": columns}, {"attributes": columns}]
    after = wire.dataverse.writes()
    assert after["sdkmessageprocessingsteps"] == before["sdkmessageprocessingsteps"]
    assert after["serviceendpoints"] == before["serviceendpoints"]
    # and once more with the same rules: nothing to do
    start = len(wire.requests)
    again = _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == []
    assert again.created == again.updated == again.removed == []


def test_images_no_rule_needs_are_removed_and_the_steps_stay(wire: Wire, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    _setup(wire, state).run()
    steps_before = wire.dataverse.writes()["sdkmessageprocessingsteps"]
    # The Delete rule is removed; the Update rules now name no column of the table.
    wire.push365.rules = [
        {
            "table": "opportunity",
            "message": "update",
            "recipients": ["context.initiatinguserid"],
            "title": "An opportunity changed",
            "link": "record",
            "stage": 40,
        }
    ]
    start = len(wire.requests)
    report = _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == [
        "DELETE dataverse sdkmessageprocessingstepimages(<id>)",
        "DELETE dataverse sdkmessageprocessingstepimages(<id>)",
        "DELETE dataverse sdkmessageprocessingstepimages(<id>)",
    ]
    assert report.removed == [
        "pre-image of Push365: Update of opportunity",
        "post-image of Push365: Update of opportunity",
        "pre-image of Push365: Delete of opportunity",
    ]
    assert wire.dataverse.writes()["sdkmessageprocessingsteps"] == steps_before
    assert _images(wire.dataverse, "Push365: Update of opportunity") == {}
    assert _images(wire.dataverse, "Push365: Delete of opportunity") == {}
    assert _images(wire.dataverse, "Push365: Delete of p365_subscription") != {}
    assert "Removed from Dataverse: 3" in "\n".join(report.lines())
    start = len(wire.requests)
    _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == []
    # The rules come back: their images with them.
    wire.push365.rules = RULES
    report = _setup(wire, state).run()
    assert report.created == [
        "pre-image of Push365: Update of opportunity",
        "post-image of Push365: Update of opportunity",
        "pre-image of Push365: Delete of opportunity",
    ]


def test_an_every_column_image_from_an_earlier_setup_is_narrowed_and_others_images_kept(
    wire: Wire, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    _setup(wire, state).run()
    delete_step = _steps_by_name(wire.dataverse)["Push365: Delete of opportunity"]
    for row in wire.dataverse.rows["sdkmessageprocessingstepimages"]:
        if row["_sdkmessageprocessingstepid_value"] == delete_step["sdkmessageprocessingstepid"]:
            row["attributes"] = None  # what earlier versions registered: every column
    wire.dataverse.rows["sdkmessageprocessingstepimages"].append(
        {  # an image an administrator added by hand: not Push365's to change
            "sdkmessageprocessingstepimageid": _id("image", "by hand"),
            "name": "Audit",
            "entityalias": "Audit",
            "imagetype": 2,
            "messagepropertyname": "Target",
            "attributes": None,
            "_sdkmessageprocessingstepid_value": delete_step["sdkmessageprocessingstepid"],
        }
    )
    start = len(wire.requests)
    report = _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == [
        "PATCH dataverse sdkmessageprocessingstepimages(<id>)"
    ]
    assert report.updated == ["pre-image of Push365: Delete of opportunity"]
    images = _images(wire.dataverse, "Push365: Delete of opportunity")
    assert images["PreImage"]["attributes"] == "name,ownerid"
    assert images["Audit"] == {"imagetype": 2, "messagepropertyname": "Target", "attributes": None}


def test_attributes_written_in_another_order_or_case_are_already_in_place(
    wire: Wire, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    _setup(wire, state).run()
    for row in wire.dataverse.rows["sdkmessageprocessingstepimages"]:
        if row["attributes"] == UPDATE_COLUMNS:
            row["attributes"] = ",".join(reversed(UPDATE_COLUMNS.upper().split(",")))
    start = len(wire.requests)
    _setup(wire, state).run()
    assert _dataverse_writes(wire, start) == []


def test_the_columns_a_rule_references() -> None:
    assert plan.referenced_columns(
        {
            "recipients": ["OwnerId", "context.userid", "to", ADMIN_ID],
            "title": "{Name} [by {modifiedby}] {name}",
            "body": "{input.Amount} {output.Result} {} { } {statuscode}",
            "link": "https://example.com/{p365_ref}",
        }
    ) == ("name", "modifiedby", "statuscode", "p365_ref", "ownerid", "to")
    assert plan.referenced_columns({"title": "Static", "link": "record", "recipients": []}) == ()
    assert plan.referenced_columns({"title": "{name}", "link": "record"}) == ("name",)


def test_the_steps_share_one_set_of_images_per_table_message_and_stage() -> None:
    planned = plan.steps(
        [
            plan.RuleEvent("Opportunity", "update", 40, ("name",)),
            plan.RuleEvent("opportunity", "Update", 40, ("ownerid", "name")),
            plan.RuleEvent("opportunity", "update", 20, ("name",)),
            plan.RuleEvent("opportunity", "qualify", 40, ("name",)),
            plan.RuleEvent("systemuser", "update", 40, ("fullname",)),  # the fixed step's
        ]
    )
    rule_steps = {step.name: step for step in planned if step.for_rules}
    assert set(rule_steps) == {
        "Push365: Update of opportunity",
        "Push365: Update of opportunity (stage 20)",
        "Push365: Qualify of opportunity",
    }
    assert [
        (i.alias, i.attributes) for i in rule_steps["Push365: Update of opportunity"].images
    ] == [("PreImage", ("name", "ownerid")), ("PostImage", ("name", "ownerid"))]
    assert [i.alias for i in rule_steps["Push365: Update of opportunity (stage 20)"].images] == [
        "PreImage"
    ]
    assert rule_steps["Push365: Qualify of opportunity"].images == ()
    assert plan.retired_step("Push365: Update of opportunity (stage 20)") == plan.Step(
        plan.SEND, "opportunity", "Update", 20, for_rules=True
    )
    assert plan.retired_step("Push365: Delete of p365_subscription") is None
    assert plan.retired_step("Someone else's step") is None


def test_columns_the_table_does_not_have_are_left_out_and_reported(tmp_path: Path) -> None:
    rules = [
        RULES[0] | {"title": "{nmae} is {statuscode}"},  # a typo
        RULES[1] | {"body": "{p365_secret}"},  # a column that cannot be read
        {"table": "opportunity", "message": "create", "recipients": ["nobody"], "title": "{x}"},
    ]
    wire = Wire(FakeDataverse(users=1), FakePush365(rules))
    report = _setup(wire, tmp_path / "state.json").run()
    assert report.unknown_columns == [
        "opportunity.nmae",
        "opportunity.p365_secret",
        "opportunity.nobody",
        "opportunity.x",
    ]
    assert "check the rules): opportunity.nmae, opportunity.p365_secret" in report.lines()[-1]
    update = _images(wire.dataverse, "Push365: Update of opportunity")
    assert {i["attributes"] for i in update.values()} == {
        "estimatedvalue,modifiedby,ownerid,statuscode"
    }
    assert _images(wire.dataverse, "Push365: Delete of opportunity")["PreImage"]["attributes"] == (
        "name,ownerid"
    )
    assert _images(wire.dataverse, "Push365: Create of opportunity") == {}
    definitions = [line for line in wire.transcript() if "EntityDefinitions" in line]
    assert definitions == [
        "GET dataverse EntityDefinitions(LogicalName='opportunity')/Attributes"
        "?$select=LogicalName,IsValidForRead"
    ]  # once per table and run


def test_rules_for_an_unbound_custom_api_any_stage_and_stage_0_get_what_dataverse_allows(
    tmp_path: Path,
) -> None:
    rules = [
        {"table": "none", "message": "devkit_debugcustomapi", "recipients": ["input.User"]},
        RULES[0] | {"stage": "any"},  # served by the post-operation step
        {"table": "opportunity", "message": "win", "stage": 0, "recipients": ["ownerid"]},
    ]
    dataverse = FakeDataverse(users=1)
    dataverse.rows["sdkmessages"].append(
        {"sdkmessageid": _id("message", "devkit_debugcustomapi"), "name": "devkit_debugcustomapi"}
    )
    wire = Wire(dataverse, FakePush365(rules))

    report = _setup(wire, tmp_path / "state.json").run()

    steps = _steps_by_name(wire.dataverse)
    custom = steps["Push365: devkit_debugcustomapi of none"]
    assert "sdkmessagefilterid@odata.bind" not in custom  # bound to no table
    assert (custom["stage"], _images(wire.dataverse, custom["name"])) == (40, {})
    assert "Push365: Update of opportunity" in steps
    assert not [name for name in steps if "stage 0" in name]
    assert report.not_registered == ["Win of opportunity (stage 0)"]
    assert "Rules no step can serve" in report.lines()[-1]


@pytest.mark.parametrize(
    "template",
    [
        "{name} was updated[ by {modifiedby}]",
        "{Name} ({StatusCode}) for {input.Target} -> {output.Result}",
        "[[{ownerid}]] {estimatedvalue}, {customerid}",
        "No placeholder [at all]",
    ],
)
def test_the_columns_setup_puts_in_images_are_the_ones_rendering_reads(template: str) -> None:
    # The setup command runs without the push365 package: its reading of a template must agree
    # with the renderer's, or a column a title shows would never arrive in an image.
    from push365.notifications.templates import placeholders

    rendered = [name.lower() for name in placeholders(template) if "." not in name]
    rule = {"table": "opportunity", "message": "update", "title": template}

    assert list(plan.referenced_columns(rule)) == list(dict.fromkeys(rendered))
