"""Least privilege: every IAM role binding infra/ makes (every google_*_iam_member, _binding and
_policy resource, for_each expanded over functions.json and the locals it names) is on a reviewed
allow-list, and the table of docs/operations/iam.md ("Who may do what") explains each line of it.
A binding added, removed or widened (another role, another member, a condition dropped) fails until
the list and that page say so. The deployer may grant only the project roles the stack's other
accounts get, and reads no data; the build account reaches only the buckets its builds read."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.docs import page
from tests.unit.test_infra import INFRA, terraform

FUNCTIONS: dict[str, Any] = json.loads((INFRA / "functions.json").read_text())
EVERY_FUNCTION = frozenset(f"function {name}" for name in FUNCTIONS)
PUBLIC_FUNCTIONS = frozenset(f"function {n}" for n, f in FUNCTIONS.items() if f["public"])
DEPLOYER = frozenset({"deployer"})

# (resource address, role) -> who gets it; "+ condition" marks a conditional binding.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    # The deployer (deploy.tf): one role per kind of resource infra/ manages.
    ("google_project_iam_member.deployer", "roles/browser"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/serviceusage.serviceUsageAdmin"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/iam.serviceAccountCreator"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/iam.serviceAccountViewer"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/cloudfunctions.developer"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/run.admin"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/pubsub.admin"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/cloudscheduler.admin"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/datastore.indexAdmin"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/logging.configWriter"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/logging.logWriter"): DEPLOYER,
    ("google_project_iam_member.deployer", "roles/monitoring.editor"): DEPLOYER,
    ("google_project_iam_member.deployer_optional", "roles/secretmanager.admin"): DEPLOYER,
    ("google_project_iam_member.deployer_optional", "roles/cloudbuild.builds.editor"): DEPLOYER,
    (
        "google_project_iam_member.deployer_conditional",
        "roles/resourcemanager.projectIamAdmin + condition",
    ): DEPLOYER,
    ("google_project_iam_member.deployer_conditional", "roles/storage.admin + condition"): (
        DEPLOYER
    ),
    ("google_service_account_iam_member.deployer_acts_as", "roles/iam.serviceAccountUser"): (
        DEPLOYER
    ),
    ("google_service_account_iam_member.deployer_admin", "roles/iam.serviceAccountAdmin"): (
        DEPLOYER
    ),
    ("google_storage_bucket_iam_member.deployer_state", "roles/storage.objectAdmin"): DEPLOYER,
    # The functions (functions.json; functions.tf, pubsub.tf, secrets.tf).
    ("google_project_iam_member.function", "roles/logging.logWriter"): EVERY_FUNCTION,
    ("google_project_iam_member.function", "roles/datastore.user"): EVERY_FUNCTION,
    ("google_project_iam_member.function", "roles/firebasecloudmessaging.admin"): frozenset(
        {"function deliver"}
    ),
    ("google_pubsub_topic_iam_member.function_publisher", "roles/pubsub.publisher"): frozenset(
        {"function send", "function deliver"}
    ),
    ("google_secret_manager_secret_iam_member.aws", "roles/secretmanager.secretAccessor"): (
        EVERY_FUNCTION
    ),
    ("google_cloud_run_service_iam_member.public", "roles/run.invoker"): frozenset({"allUsers"}),
    # Builds, the export, the scheduler, Pub/Sub.
    ("google_project_iam_member.build", "roles/logging.logWriter"): frozenset({"build"}),
    ("google_project_iam_member.build", "roles/artifactregistry.writer"): frozenset({"build"}),
    ("google_project_iam_member.build_sources", "roles/storage.objectAdmin + condition"): (
        frozenset({"build"})
    ),
    ("google_project_iam_member.backup_export", "roles/datastore.importExportAdmin"): frozenset(
        {"backup"}
    ),
    ("google_storage_bucket_iam_member.backup_writer", "roles/storage.objectAdmin"): frozenset(
        {"Firestore service agent"}
    ),
    ("google_cloud_run_service_iam_member.purge_invoker", "roles/run.invoker"): frozenset(
        {"purge_scheduler"}
    ),
    ("google_cloud_run_service_iam_member.reconcile_invoker", "roles/run.invoker"): frozenset(
        {"purge_scheduler"}
    ),
    ("google_cloud_run_service_iam_member.deliver_invoker", "roles/run.invoker"): frozenset(
        {"pubsub_push"}
    ),
    ("google_pubsub_topic_iam_member.dead_letter_publisher", "roles/pubsub.publisher"): frozenset(
        {"Pub/Sub service agent"}
    ),
    (
        "google_pubsub_subscription_iam_member.dead_letter_subscriber",
        "roles/pubsub.subscriber",
    ): frozenset({"Pub/Sub service agent"}),
    (
        "google_service_account_iam_member.pubsub_push_token_creator",
        "roles/iam.serviceAccountTokenCreator",
    ): frozenset({"Pub/Sub service agent"}),
}

IAM_TYPE = re.compile(r"^google_[a-z0-9_]+_iam_(member|binding|policy)$")


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform()


def _keys(local: Any) -> list[str]:
    """The keys of a map local (python-hcl2 keeps a quoted key's quotes)."""
    assert isinstance(local, dict), local
    return [str(key).strip('"') for key in local]


def _instances(tf: dict[str, Any], address: str, body: dict[str, Any]) -> list[dict[str, str]]:
    """One ``each`` per instance: {"key", "value", "function"} as the binding sees them."""
    locals_ = tf["locals"]
    for_each = body.get("for_each")
    if for_each is None:
        return [{}]  # a single binding (count: at most one)
    simple = re.fullmatch(r"\$\{toset\(local\.([a-z_]+)\)\}", for_each)
    if simple:
        return [{"key": v, "value": v} for v in locals_[simple[1]]]
    if for_each == "${local.function_roles}":
        return [
            {"function": name, "role": role}
            for name, function in FUNCTIONS.items()
            for role in [*locals_["common_roles"], *function["roles"]]
        ]
    if for_each == "${local.function_publishers}":
        return [
            {"function": name}
            for name, function in FUNCTIONS.items()
            for _ in set(function.get("publishes", {}).values())
        ]
    if for_each == "${local.aws_secret_readers}":
        return [{"function": name} for name in FUNCTIONS]  # with mail_backend = "ses"
    if for_each == "${local.deployer_acts_as}":
        return [{}]  # one grant on each of the stack's accounts, the same role and member
    if for_each in ("${local.deployer_conditional_roles}",):
        return [{"key": key} for key in _keys(locals_["deployer_conditional_roles"])]
    if "local.deployer_optional_roles" in for_each:
        return [{"value": key} for key in _keys(locals_["deployer_optional_roles"])]
    if "if function.public" in for_each:
        return [{"function": name} for name, f in FUNCTIONS.items() if f["public"]]
    raise AssertionError(f"{address}: a for_each this test cannot expand: {for_each}")


def _resolve(expression: str, each: dict[str, str]) -> str:
    if expression in ("${each.value}", "${each.key}"):
        return each[expression[7:-1]]
    if expression == "${each.value.role}":
        return each["role"]
    return expression


def _who(address: str, member: str, each: dict[str, str]) -> str:
    account = re.fullmatch(
        r"serviceAccount:\$\{google_service_account\.([a-z_]+)(\[each\.value\.function\])?\.email\}",
        member,
    )
    if account and account[2]:
        return f"function {each['function']}"
    if account:
        return account[1]
    known = {
        "serviceAccount:${google_project_service_identity.firestore.email}": (
            "Firestore service agent"
        ),
        "${local.pubsub_service_agent}": "Pub/Sub service agent",
        "allUsers": "allUsers",
    }
    if member in known:
        return known[member]
    raise AssertionError(f"{address}: a member this test does not know: {member}")


def bindings(tf: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """(address, role[ + condition]) -> members, for every IAM resource of infra/."""
    found: dict[tuple[str, str], set[str]] = {}
    for type_name, by_name in tf["resource"].items():
        if not IAM_TYPE.match(type_name):
            continue
        for name, body in by_name.items():
            address = f"{type_name}.{name}"
            assert type_name.endswith("_iam_member"), (
                f"{address}: an authoritative binding or policy replaces grants made outside "
                "infra/; review it here and in docs/operations/iam.md first"
            )
            for each in _instances(tf, address, body):
                role = _resolve(body["role"], each)
                if "condition" in body:
                    role += " + condition"
                found.setdefault((address, role), set()).add(_who(address, body["member"], each))
    return {key: frozenset(members) for key, members in found.items()}


def test_every_binding_is_on_the_reviewed_allow_list(tf: dict[str, Any]) -> None:
    found = bindings(tf)

    unexpected = {key: sorted(m) for key, m in found.items() if ALLOWED.get(key) != m}
    gone = sorted(key for key in ALLOWED if key not in found)
    assert unexpected == {}, "bindings not on the reviewed allow-list (or with other members)"
    assert gone == [], "allow-listed bindings infra/ no longer makes: take them off the list"


def test_no_one_holds_a_role_that_reads_or_owns_everything(tf: dict[str, Any]) -> None:
    roles = {role.removesuffix(" + condition") for _, role in bindings(tf)}
    unconditional_project = {
        role
        for (address, role) in bindings(tf)
        if address.startswith("google_project_iam_member.") and "condition" not in role
    }

    assert not roles & {"roles/owner", "roles/editor", "roles/datastore.owner"}
    unconditional = {role for _, role in bindings(tf) if not role.endswith(" + condition")}
    # Granting roles only under a condition (which roles: the next test).
    assert not unconditional & {"roles/resourcemanager.projectIamAdmin", "roles/iam.securityAdmin"}
    # Storage at project level only under a condition: never reaching every bucket.
    assert not {r for r in unconditional_project if r.startswith("roles/storage.")}
    # Service accounts are administered one by one (deployer_admin), not project-wide.
    assert "roles/iam.serviceAccountAdmin" not in unconditional_project
    assert "roles/iam.serviceAccountUser" not in unconditional_project


def test_the_deployer_may_grant_only_the_stacks_other_project_roles(tf: dict[str, Any]) -> None:
    conditional = tf["locals"]["deployer_conditional_roles"]
    iam_admin = next(v for k, v in conditional.items() if "projectIamAdmin" in k)
    granted_to_others = sorted(
        {
            role.removesuffix(" + condition")
            for (address, role), members in bindings(tf).items()
            if address.startswith("google_project_iam_member.") and members != DEPLOYER
        }
    )

    assert iam_admin["expression"] == (
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])"
        ".hasOnly(${jsonencode(local.deployer_grantable_roles)})"
    )
    # Exactly what the stack's other accounts get: none of the deployer's own roles.
    assert tf["locals"]["deployer_grantable_roles"] == granted_to_others
    assert "roles/resourcemanager.projectIamAdmin" not in granted_to_others
    assert "roles/storage.admin" not in granted_to_others


def test_the_deployer_reads_no_data(tf: dict[str, Any]) -> None:
    conditional = tf["locals"]["deployer_conditional_roles"]
    storage = next(v for k, v in conditional.items() if "storage.admin" in k)
    backups = tf["resource"]["google_storage_bucket"]["backups"]["name"]

    # Cloud Storage's administration, never an object of the backups bucket (the exports).
    assert storage["expression"].replace('\\"', '"') == (
        f'!resource.name.startsWith("projects/_/buckets/{backups}/objects/")'
    )
    # Firestore: indexes, single-field settings and TTL policies (Index Admin), no document.
    assert "roles/datastore.indexAdmin" in tf["locals"]["deployer_roles"]
    assert not any(
        "datastore.owner" in r or "datastore.user" in r for r in tf["locals"]["deployer_roles"]
    )


def test_the_build_account_reaches_only_the_buckets_builds_read(tf: dict[str, Any]) -> None:
    binding = tf["resource"]["google_project_iam_member"]["build_sources"]
    expression = binding["condition"][0]["expression"].replace('\\"', '"')
    buckets = tf["locals"]["build_buckets"]

    assert binding["role"] == "roles/storage.objectAdmin"
    assert buckets == [
        "${google_storage_bucket.source.name}",
        "gcf-v2-sources-${data.google_project.this.number}-${var.region}",
    ]
    assert expression == (
        '${join(" || ", [for bucket in local.build_buckets : '
        '"resource.name == \\"projects/_/buckets/${bucket}\\" || '
        'resource.name.startsWith(\\"projects/_/buckets/${bucket}/\\")"])}'
    ).replace('\\"', '"')


def docs_rows() -> list[list[str]]:
    section = page("operations/iam.md")
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def test_the_docs_explain_every_line_of_the_allow_list() -> None:
    rows = docs_rows()

    unexplained = []
    for (address, role), members in sorted(ALLOWED.items()):
        plain = role.removesuffix(" + condition")
        matching = [r for r in rows if r[0] == f"`{address}`" and r[1].startswith(f"`{plain}`")]
        conditional = role.endswith(" + condition")
        if (
            len(matching) != 1
            or conditional != ("condition" in matching[0][1])
            or not all(member in matching[0][2] for member in _readme_names(members))
            or len(matching[0][3]) < 20
        ):
            unexplained.append(f"{address} {role}")
    assert unexplained == [], "iam.md's table: binding | role | to whom | why"
    assert len(rows) == len(ALLOWED)


def _readme_names(members: frozenset[str]) -> list[str]:
    if members == EVERY_FUNCTION:
        return ["every function"]
    if members == PUBLIC_FUNCTIONS:
        return ["public"]
    return sorted(m.removeprefix("function ") for m in members)
