"""Every argument and nested block of infra/*.tf exists in the google provider's published schema
(as carried by its generated bindings, @cdktf/provider-google, fetched by `make test`:
devstack/provider_schema.py). `terraform validate` needs the provider from the Terraform
registry, which this machine cannot reach; this is the check that can run here."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest

from devstack.provider_schema import PROVIDER_VERSION, SCHEMA
from tests.conftest import REPO
from tests.unit.test_infra import _clean

INFRA = REPO / "infra"
# Terraform's own meta-arguments, valid on every resource and data source.
META = frozenset({"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner"})
# Resources only the google-beta provider has (not in the GA bindings): named, and nothing else.
BETA_ONLY = {"resource.google_project_service_identity.firestore"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.exists():
        message = f"NOT RUN - PROVIDER SCHEMA MISSING: {SCHEMA} (make provider-schema)"
        if os.environ.get("PUSH365_REQUIRE_EMULATOR") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return json.loads(SCHEMA.read_text())  # type: ignore[no-any-return]


def problems(infra: Path, schema: dict[str, Any]) -> tuple[list[str], set[str]]:
    """(every argument or block the schema does not have, the blocks left to the beta provider)."""
    found: list[str] = []
    beta: set[str] = set()
    for path in sorted(infra.glob("*.tf")):
        with path.open() as file:
            parsed = _clean(hcl2.load(file))
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_name, by_name in block.items():
                    if not type_name.startswith("google_"):
                        continue  # archive, ...: other providers
                    for name, body in by_name.items():
                        where = f"{kind}.{type_name}.{name}"
                        spec = schema[kind].get(type_name)
                        if spec is None and "google-beta" in str(body.get("provider")):
                            beta.add(where)
                        elif spec is None:
                            found.append(f"{path.name}: {where}: no such {kind}")
                        else:
                            found += _check(f"{path.name}: {where}", body, spec, top=True)
    return found, beta


def _check(where: str, body: dict[str, Any], spec: dict[str, Any], top: bool) -> list[str]:
    found: list[str] = []
    for key, value in body.items():
        if top and key in META:
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, generator in dynamic.items():
                    if name not in spec["blocks"]:
                        found.append(f"{where}: dynamic block {name}")
                        continue
                    for content in generator.get("content", []):
                        found += _check(f"{where}.{name}", content, spec["blocks"][name], False)
        elif key in spec["blocks"]:
            for item in value if isinstance(value, list) else [value]:
                found += _check(f"{where}.{key}", item, spec["blocks"][key], False)
        elif key not in spec["arguments"]:
            found.append(f"{where}: {key}")
    return found


def test_every_argument_and_block_is_in_the_providers_schema(schema: dict[str, Any]) -> None:
    found, beta = problems(INFRA, schema)

    assert found == [], f"not in google provider {PROVIDER_VERSION}'s schema"
    assert beta == BETA_ONLY


def test_a_planted_wrong_argument_fails_the_check(schema: dict[str, Any], tmp_path: Path) -> None:
    for path in INFRA.glob("*.tf"):
        shutil.copy(path, tmp_path / path.name)
    functions = tmp_path / "functions.tf"
    functions.write_text(
        functions.read_text().replace(
            "service_account = google_service_account.build.id",
            "service_acount = google_service_account.build.id",
        )
    )
    monitoring = tmp_path / "monitoring.tf"
    monitoring.write_text(
        re.sub(r"threshold_value( *)= 0\.01", r"threshold\1= 0.01", monitoring.read_text(), count=1)
    )

    found, _ = problems(tmp_path, schema)

    assert found == [
        "functions.tf: resource.google_cloudfunctions2_function.function.build_config: "
        "service_acount",
        "monitoring.tf: resource.google_monitoring_alert_policy.server_errors.conditions."
        "condition_threshold: threshold",
    ]
