"""The setup, idempotent and resumable: every run reads what exists and creates only what is
missing, so a second run changes nothing and a run that stopped halfway continues where it stopped.

The organization's API key is answered once, by the first registration: it is kept in the state
file (created readable by its owner only) so that a later run can find it. Nothing prints it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from dynamics.setup import plan
from dynamics.setup.dataverse import WebApi, odata_string
from dynamics.setup.push365 import KEY_HEADER, MAX_USERS_PER_REQUEST, Push365, Push365Error

CONTRACT_WEBHOOK = 8
AUTH_HTTP_HEADER = 5
DEPLOYMENT_SERVER = 0
USER_SELECT = ("systemuserid", *plan.USER_COLUMNS)
_USER_FIELDS = {
    "domainname": "domain_name",
    "fullname": "full_name",
    "internalemailaddress": "email",
    "windowsliveid": "windows_live_id",
    "mobilephone": "mobile_phone",
}


class SetupError(Exception):
    """The setup cannot go on; the message says what to do."""


@dataclass
class State:
    """What a run must remember for the next: the organization, its key, and which endpoints
    already carry that key (``authvalue`` cannot be read back); and where Push365 is (its base
    URL and function prefix), so that ``rules push`` and ``rules pull`` need only this file."""

    path: Path
    organization_id: str = ""
    api_key: str = ""
    keyed_endpoints: list[str] = field(default_factory=list)
    base_url: str = ""
    function_prefix: str | None = None

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text("utf-8"))
        return cls(
            path,
            str(data.get("organization_id", "")),
            str(data.get("api_key", "")),
            [str(name) for name in data.get("keyed_endpoints", [])],
            str(data.get("base_url", "")),
            None if data.get("function_prefix") is None else str(data["function_prefix"]),
        )

    def save(self) -> None:
        data = {
            "organization_id": self.organization_id,
            "api_key": self.api_key,
            "keyed_endpoints": self.keyed_endpoints,
            "base_url": self.base_url,
            "function_prefix": self.function_prefix,
        }
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)


@dataclass
class Report:
    organization_id: str = ""
    registered: str = ""
    """``created`` or ``updated``."""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    """``table.column`` the rules name that the table does not have: left out of its images."""
    not_registered: list[str] = field(default_factory=list)
    """Rule events no step can be registered for (stage 0 or 30)."""
    users: int = 0

    def lines(self) -> list[str]:
        found = [
            f"Organization {self.organization_id}: {self.registered} in Push365.",
            f"Created in Dataverse: {len(self.created)}"
            + "".join(f"\n  + {name}" for name in self.created),
            f"Updated in Dataverse: {len(self.updated)}"
            + "".join(f"\n  ~ {name}" for name in self.updated),
            f"Removed from Dataverse: {len(self.removed)}"
            + "".join(f"\n  - {name}" for name in self.removed),
            f"Already in place: {len(self.unchanged)}",
            f"Enabled system users loaded into Push365: {self.users}",
        ]
        if self.unknown_columns:
            found.append(
                "Columns your rules name that their table does not have (left out of the images;"
                " check the rules): " + ", ".join(self.unknown_columns)
            )
        if self.not_registered:
            found.append(
                "Rules no step can serve (stage 0 contexts come from a workflow or an action's"
                " own step, stage 30 is the platform's): " + ", ".join(self.not_registered)
            )
        return found


BASE_URL_VARIABLE = "p365_BaseUrl"


def base_url_from_environment(dataverse: WebApi) -> str:
    """The ``p365_BaseUrl`` environment variable's current value (its value, else its default)."""
    answer = dataverse.get(
        "RetrieveEnvironmentVariableValue(DefinitionSchemaName=@p1)",
        {"@p1": odata_string(BASE_URL_VARIABLE)},
    )
    value = str((answer or {}).get("Value") or "").strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise SetupError(
            "The Push365 base URL environment variable (p365_BaseUrl) is not set: set it in the "
            "Push365 solution, or give --base-url."
        )
    return value


def auth_value(key: str) -> str:
    """HttpHeader authentication: the headers as Dataverse stores them."""
    return f"<settings><setting name={quoteattr(KEY_HEADER)} value={quoteattr(key)} /></settings>"


class Setup:
    def __init__(
        self,
        dataverse: WebApi,
        push365: Push365,
        state: State,
        page_size: int = MAX_USERS_PER_REQUEST,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.dataverse = dataverse
        self.push365 = push365
        self.state = state
        self.page_size = min(page_size, MAX_USERS_PER_REQUEST)
        self.say = say
        self.report = Report()
        self._message_ids: dict[str, str] = {}
        self._table_columns: dict[str, frozenset[str]] = {}

    def run(self) -> Report:
        registration = self._registration()
        self._register(registration)
        endpoint_ids = {endpoint: self._endpoint(endpoint) for endpoint in plan.ENDPOINTS}
        events = self.push365.rule_events(self.state.api_key)
        planned = plan.steps(events)
        self.report.not_registered = plan.not_registrable(events)
        for step in planned:
            self._step(step, endpoint_ids[step.endpoint])
        self._retired_rule_steps(planned)
        self._load_users()
        return self.report

    # -- the organization ------------------------------------------------------------------
    def _registration(self) -> dict[str, Any]:
        me = self.dataverse.get("WhoAmI")
        organization_id = str(me["OrganizationId"]).lower()
        detail = self.dataverse.get(
            "RetrieveCurrentOrganization(AccessType=@p1)",
            {"@p1": "Microsoft.Dynamics.CRM.EndpointAccessType'Default'"},
        )["Detail"]
        organization = self.dataverse.get(
            f"organizations({organization_id})", {"$select": "languagecode"}
        )
        admin = self.dataverse.get(
            f"systemusers({me['UserId']})",
            {"$select": "fullname,internalemailaddress,mobilephone"},
        )
        self.report.organization_id = organization_id
        registration: dict[str, Any] = {
            "organization": {
                "id": organization_id,
                "unique_name": detail["UniqueName"],
                "name": detail["FriendlyName"],
                "language_code": int(organization["languagecode"]),
                "url": self.dataverse.environment_url,
            }
        }
        if not self.state.api_key:
            # Only when registering: "admins" replaces the list, which the organization may have
            # corrected since (POST /register with its key).
            registration["admins"] = [
                {
                    "full_name": admin.get("fullname"),
                    "email": admin.get("internalemailaddress"),
                    "mobile_phone": admin.get("mobilephone"),
                }
            ]
        return registration

    def _register(self, registration: dict[str, Any]) -> None:
        organization_id = registration["organization"]["id"]
        if self.state.organization_id and self.state.organization_id != organization_id:
            raise SetupError(
                "The state file belongs to another organization: give this environment its own "
                "--state file."
            )
        try:
            key = self.push365.register(registration, self.state.api_key or None)
        except Push365Error as error:
            if error.status != 409:
                raise
            raise SetupError(
                "This organization is registered with Push365 already, and the state file holds "
                "no key for it: run with the --state file of the first run (or put the "
                'organization\'s key in it as "api_key").'
            ) from None
        self.state.organization_id = organization_id
        self.state.base_url = self.push365.base_url
        self.state.function_prefix = self.push365.function_prefix
        if key is not None:
            self.state.api_key = key
            self.state.keyed_endpoints = []
            self.report.registered = "registered"
        else:
            self.report.registered = "updated"
        self.state.save()
        self.say(f"Push365: organization {self.report.registered}.")

    # -- endpoints -------------------------------------------------------------------------
    def _endpoint(self, endpoint: plan.Endpoint) -> str:
        url = self.push365.url(endpoint.function, endpoint.route)
        found = self.dataverse.rows(
            "serviceendpoints",
            {
                "$select": "serviceendpointid,name,url,contract,authtype",
                "$filter": f"name eq {odata_string(endpoint.name)}",
            },
        )
        label = f"service endpoint {endpoint.name}"
        if not found:
            endpoint_id = self.dataverse.create(
                "serviceendpoints",
                {
                    "name": endpoint.name,
                    "description": "Push365 webhook (python -m dynamics.setup)",
                    "url": url,
                    "contract": CONTRACT_WEBHOOK,
                    "authtype": AUTH_HTTP_HEADER,
                    "authvalue": auth_value(self.state.api_key),
                },
            )
            self.report.created.append(label)
        else:
            existing = found[0]
            endpoint_id = str(existing["serviceendpointid"]).lower()
            changes: dict[str, object] = {}
            if existing.get("url") != url:
                changes["url"] = url
            if existing.get("authtype") != AUTH_HTTP_HEADER:
                changes["authtype"] = AUTH_HTTP_HEADER
            if endpoint.name not in self.state.keyed_endpoints or changes:
                changes["authvalue"] = auth_value(self.state.api_key)
            if changes:
                self.dataverse.update("serviceendpoints", endpoint_id, changes)
                self.report.updated.append(label)
            else:
                self.report.unchanged.append(label)
        if endpoint.name not in self.state.keyed_endpoints:
            self.state.keyed_endpoints.append(endpoint.name)
            self.state.save()
        return endpoint_id

    # -- steps -----------------------------------------------------------------------------
    def _message_id(self, message: str) -> str:
        if message not in self._message_ids:
            rows = self.dataverse.rows(
                "sdkmessages",
                {"$select": "sdkmessageid", "$filter": f"name eq {odata_string(message)}"},
            )
            if not rows:
                raise SetupError(f"Dataverse has no message named {message}.")
            self._message_ids[message] = str(rows[0]["sdkmessageid"]).lower()
        return self._message_ids[message]

    def _filter_id(self, table: str, message_id: str) -> str:
        rows = self.dataverse.rows(
            "sdkmessagefilters",
            {
                "$select": "sdkmessagefilterid",
                "$filter": f"primaryobjecttypecode eq {odata_string(table)} "
                f"and _sdkmessageid_value eq {message_id}",
            },
        )
        if not rows:
            raise SetupError(
                f"Dataverse has no event for this table and message ({table}): import the "
                "Push365 solution first, or check the table names in your rules."
            )
        return str(rows[0]["sdkmessagefilterid"]).lower()

    def _step(self, step: plan.Step, endpoint_id: str) -> None:
        message_id = self._message_id(step.message)
        # A message bound to no table (an unbound custom API) has no filter: the step is on it.
        unbound = step.table == plan.UNBOUND
        filter_id = None if unbound else self._filter_id(step.table, message_id)
        found = self.dataverse.rows(
            "sdkmessageprocessingsteps",
            {
                "$select": "sdkmessageprocessingstepid,stage,mode,filteringattributes",
                "$filter": f"name eq {odata_string(step.name)}",
            },
        )
        wanted: dict[str, object] = {
            "stage": step.stage,
            "mode": step.mode,
            "filteringattributes": ",".join(step.filtering_attributes) or None,
        }
        label = f"step {step.name}"
        if not found:
            step_id = self.dataverse.create(
                "sdkmessageprocessingsteps",
                {
                    "name": step.name,
                    "description": f"Push365: {step.endpoint.name}",
                    **wanted,
                    "rank": 1,
                    "supporteddeployment": DEPLOYMENT_SERVER,
                    "asyncautodelete": step.mode == plan.MODE_ASYNCHRONOUS,
                    "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
                    "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
                    **(
                        {}
                        if filter_id is None
                        else {"sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})"}
                    ),
                },
            )
            self.report.created.append(label)
        else:
            existing = found[0]
            step_id = str(existing["sdkmessageprocessingstepid"]).lower()
            current = dict(
                existing, filteringattributes=existing.get("filteringattributes") or None
            )
            changes = {name: value for name, value in wanted.items() if current.get(name) != value}
            if changes:
                self.dataverse.update("sdkmessageprocessingsteps", step_id, changes)
                self.report.updated.append(label)
            else:
                self.report.unchanged.append(label)
        if step.for_rules and step.images:  # only a step that takes images needs the columns
            step = self._known_columns(step)
        if step.images or step.for_rules:
            self._images(step, step_id)

    def _known_columns(self, step: plan.Step) -> plan.Step:
        """The rule step with images holding only columns its table has: a rule naming one it
        does not (a template's typo, a column since deleted) renders it as missing, and must not
        stop the setup (Dataverse refuses an image naming an unknown column)."""
        if step.table not in self._table_columns:
            rows = self.dataverse.rows(
                f"EntityDefinitions(LogicalName={odata_string(step.table)})/Attributes",
                {"$select": "LogicalName,IsValidForRead"},
            )
            self._table_columns[step.table] = frozenset(
                str(row["LogicalName"]).lower() for row in rows if row.get("IsValidForRead")
            )
        known = self._table_columns[step.table]
        unknown = [column for column in step.columns if column not in known]
        for column in unknown:
            label = f"{step.table}.{column}"
            if label not in self.report.unknown_columns:
                self.report.unknown_columns.append(label)
                self.say(f"Dataverse: {step.table} has no readable column {column}: not in images.")
        return step.holding(known) if unknown else step

    def _images(self, step: plan.Step, step_id: str) -> None:
        """Make the step's Push365 images (``PreImage``, ``PostImage``) exactly ``step.images``:
        create what is missing, correct what differs, and, on a rule step, delete an image no
        rule needs any more. Images under other aliases are someone else's: never touched."""
        found = {
            str(row.get("entityalias")): row
            for row in self.dataverse.rows(
                "sdkmessageprocessingstepimages",
                {
                    "$select": "sdkmessageprocessingstepimageid,entityalias,imagetype,"
                    "messagepropertyname,attributes",
                    "$filter": f"_sdkmessageprocessingstepid_value eq {step_id}",
                },
            )
        }
        for image in step.images:
            label = f"{image.kind} of {step.name}"
            wanted: dict[str, object] = {
                "imagetype": image.image_type,
                "messagepropertyname": image.message_property,
                "attributes": ",".join(image.attributes) or None,
            }
            existing = found.pop(image.alias, None)
            if existing is None:
                self.dataverse.create(
                    "sdkmessageprocessingstepimages",
                    {
                        "name": image.alias,
                        "entityalias": image.alias,
                        **wanted,
                        "sdkmessageprocessingstepid@odata.bind": (
                            f"/sdkmessageprocessingsteps({step_id})"
                        ),
                    },
                )
                self.report.created.append(label)
                continue
            changes = {
                name: value
                for name, value in wanted.items()
                if not _same_image_value(name, existing.get(name), value)
            }
            if changes:
                image_id = str(existing["sdkmessageprocessingstepimageid"]).lower()
                self.dataverse.update("sdkmessageprocessingstepimages", image_id, changes)
                self.report.updated.append(label)
            else:
                self.report.unchanged.append(label)
        if step.for_rules:
            for alias in plan.IMAGE_ALIASES:
                if alias in found:
                    image_id = str(found[alias]["sdkmessageprocessingstepimageid"]).lower()
                    self.dataverse.delete("sdkmessageprocessingstepimages", image_id)
                    kind = "post-image" if alias == plan.POST_IMAGE else "pre-image"
                    self.report.removed.append(f"{kind} of {step.name}")

    def _retired_rule_steps(self, planned: list[plan.Step]) -> None:
        """The steps of rules that are gone keep running (send answers them ``no_rule``), but
        nothing needs their images any more: a rule step's images hold only what the current
        rules reference, so a step no rule names any more carries none."""
        names = {step.name for step in planned}
        found = self.dataverse.rows(
            "sdkmessageprocessingsteps",
            {
                "$select": "sdkmessageprocessingstepid,name",
                "$filter": f"startswith(name,{odata_string(plan.STEP_NAME_PREFIX)})",
            },
        )
        for row in found:
            name = str(row.get("name"))
            if name in names:
                continue
            retired = plan.retired_step(name)
            if retired is not None:
                self._images(retired, str(row["sdkmessageprocessingstepid"]).lower())

    # -- users -----------------------------------------------------------------------------
    def _load_users(self) -> None:
        pages = self.dataverse.pages(
            "systemusers",
            {"$select": ",".join(USER_SELECT), "$filter": "isdisabled eq false"},
            self.page_size,
        )
        for page in pages:
            users = list(_users(page))
            if users:
                self.report.users += self.push365.upsert_users(self.state.api_key, users)
        self.say(f"Push365: {self.report.users} users loaded.")


def _same_image_value(name: str, current: object, wanted: object) -> bool:
    """Attributes compare as sets of names (Dataverse keeps the list as written; order and case
    carry no meaning); an empty list is every column, as ``None`` is."""
    if name != "attributes":
        return current == wanted
    return _columns(current) == _columns(wanted)


def _columns(value: object) -> frozenset[str]:
    text = value if isinstance(value, str) else ""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def _users(rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, object]]:
    for row in rows:
        user: dict[str, object] = {"id": str(row["systemuserid"]).lower()}
        for column, name in _USER_FIELDS.items():
            user[name] = row.get(column)  # null clears what Push365 held
        yield user
