# Only this account may invoke purge, and only the scheduler acts as it.
resource "google_service_account" "purge_scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-purge-scheduler"
  display_name = "Push365 purge scheduler"
  depends_on   = [google_project_service.apis]
}

resource "google_cloud_run_service_iam_member" "purge_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["purge"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.purge_scheduler.email}"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "purge" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-purge"
  description      = "Daily retention purge (privacy policy: unsubscribed tokens gone within 30 days)."
  schedule         = var.purge_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "600s"

  retry_config {
    retry_count = 3
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["purge"].service_config[0].uri
    body        = base64encode("{}")
    # No secret here: anyone who can view the job sees its headers. purge verifies this OIDC
    # token itself (signature, audience = its URL, email = this account), besides Cloud Run's
    # own invoker check.
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.purge_scheduler.email
      audience              = google_cloudfunctions2_function.function["purge"].service_config[0].uri
    }
  }

  depends_on = [google_project_service.apis]
}

# The same account invokes reconcile: every 5 minutes, sends no fan-out message can come for any
# more (older than the subscription's retention) are recorded as lost (docs/api/reconcile.md).
resource "google_cloud_run_service_iam_member" "reconcile_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["reconcile"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.purge_scheduler.email}"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "reconcile" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-reconcile"
  description      = "Every 5 minutes: sends no fan-out message can come for any more are recorded as lost."
  schedule         = "*/5 * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "320s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["reconcile"].service_config[0].uri
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.purge_scheduler.email
      audience              = google_cloudfunctions2_function.function["reconcile"].service_config[0].uri
    }
  }

  depends_on = [google_project_service.apis]
}
