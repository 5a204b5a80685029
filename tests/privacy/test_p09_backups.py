"""P9 (User's Instance ID): data is removed from backup systems within 180 days.

The backup bucket's lifecycle, as numbers: a current export becomes noncurrent at 178 days
(Cloud Storage acts within about a day) and that version is deleted at once by a later pass (up
to a day late too); nothing is moved to another storage class instead of deleted, and the
variable cannot be raised past 178.
"""

from __future__ import annotations

from typing import Any

from tests.privacy import infra
from tests.privacy.conftest import policy

LIFECYCLE_LAG_DAYS = 1  # Cloud Storage runs a lifecycle action up to about a day after it is due


def rules() -> list[dict[str, Any]]:
    return infra.resource("google_storage_bucket", "backups")["lifecycle_rule"]  # type: ignore[no-any-return]


def condition(rule: dict[str, Any]) -> dict[str, Any]:
    return rule["condition"][0]  # type: ignore[no-any-return]


def test_every_lifecycle_rule_deletes() -> None:
    assert [rule["action"][0]["type"] for rule in rules()] == ["Delete"] * len(rules())


def test_a_current_export_is_deleted_within_180_days() -> None:
    (age,) = [infra.value(condition(r)["age"]) for r in rules() if "age" in condition(r)]

    # The age rule, then the noncurrent version's rule: each up to a day late.
    assert age + 2 * LIFECYCLE_LAG_DAYS <= policy()["retention"]["backups_days"]
    assert age <= 178


def test_a_noncurrent_version_is_deleted_at_once() -> None:
    (noncurrent,) = [condition(r) for r in rules() if "days_since_noncurrent_time" in condition(r)]

    assert infra.value(noncurrent["days_since_noncurrent_time"]) == 0
    # Without this the provider drops a 0 and the rule would have no age condition at all.
    assert noncurrent["send_days_since_noncurrent_time_if_zero"] is True
    assert noncurrent.get("with_state") == "ARCHIVED"


def test_the_retention_variable_cannot_be_raised_past_178_days() -> None:
    assert infra.default("backup_retention_days") <= 178
    assert infra.accepts("backup_retention_days", 178)
    assert not infra.accepts("backup_retention_days", 179)
    assert not infra.accepts("backup_retention_days", 1800)


def test_the_bucket_is_versioned_only_with_noncurrent_versions_deleted() -> None:
    bucket = infra.resource("google_storage_bucket", "backups")

    assert bucket["versioning"][0]["enabled"] is True
    assert bucket["public_access_prevention"] == "enforced"
