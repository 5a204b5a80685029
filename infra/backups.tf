# Daily Firestore exports to a bucket whose lifecycle makes sure no object or version outlives
# the privacy policy's 180 days for backups: a current object is deleted once it is
# backup_retention_days old (178; Cloud Storage acts within about a day of the condition being
# met), which in this versioned bucket makes it noncurrent, and a noncurrent version is deleted
# at once (0 days since it became noncurrent) by a later pass, up to a day late too. Exports are never archived or moved elsewhere.
# Soft delete is off: Cloud Storage would otherwise keep every deleted object restorable for 7
# more days (its default), about 187 days in all. 178 + 1 + 0 + 1 + 0 <= 180
# (tests/unit/test_infra_retention.py computes this bound for every bucket).
resource "google_storage_bucket" "backups" {
  name                        = "${var.project_id}-${var.name_prefix}-backups"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # A deleted export is gone, not restorable for another 7 days.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.backup_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # A noncurrent version must not outlive the promise either: deleted as soon as it is one.
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
  # checkov:skip=CKV_GCP_62:Exports are written only by the Firestore service agent; Cloud Audit Logs record data access.
}

resource "google_service_account" "backup" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-backup"
  display_name = "Push365 Firestore export"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "backup_export" {
  project = var.project_id
  role    = "roles/datastore.importExportAdmin"
  member  = "serviceAccount:${google_service_account.backup.email}"

  depends_on = [google_project_service.apis]
}

# The export itself is written by Firestore's service agent. In a new project that agent may not
# exist yet when the binding is made (it is created lazily): it is created here explicitly first.
resource "google_project_service_identity" "firestore" {
  provider   = google-beta
  project    = var.project_id
  service    = "firestore.googleapis.com"
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "backup_writer" {
  bucket     = google_storage_bucket.backups.name
  role       = "roles/storage.objectAdmin"
  member     = "serviceAccount:${google_project_service_identity.firestore.email}"
  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "backup" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-firestore-export"
  description      = "Daily Firestore export to the backup bucket."
  schedule         = var.backup_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "320s"

  http_target {
    http_method = "POST"
    uri         = "https://firestore.googleapis.com/v1/projects/${var.project_id}/databases/(default):exportDocuments"
    body        = base64encode(jsonencode({ outputUriPrefix = "gs://${google_storage_bucket.backups.name}/exports" }))
    headers = {
      "Content-Type" = "application/json"
    }

    oauth_token {
      service_account_email = google_service_account.backup.email
      scope                 = "https://www.googleapis.com/auth/datastore"
    }
  }

  depends_on = [google_project_service.apis, google_firestore_database.default]
}
