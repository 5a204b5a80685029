# The Dynamics 365 solution the pipeline builds (cloudbuild.yaml, step "solution"): its
# unmanaged and managed zips, push365_<version>.zip and push365_<version>_managed.zip, the
# version in their names (dynamics/packer.py, from shared/pyproject.toml), stored here as the
# build's artifacts, with Cloud Build's manifest artifacts-<build id>.json (each zip's generation
# and MD5). An administrator downloads the zip to import from here, without a developer.
#
# The repository's code and web resources only: no one's data (tests/unit/test_infra_retention.py
# reviews it as such), bounded all the same: a zip not built again for
# solution_retention_days is deleted, and a zip replaced by a later build of the same version (a
# noncurrent version) at Cloud Storage's next lifecycle pass.
resource "google_storage_bucket" "solution" {
  name                        = "${var.project_id}-${var.name_prefix}-solution"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.solution_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time              = 0
      send_days_since_noncurrent_time_if_zero = true
      with_state                              = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  # checkov:skip=CKV_GCP_62:Access logs of a bucket holding only the built solution add nothing the audit log of Cloud Storage does not.
}
