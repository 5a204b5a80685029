# The API call records (one per request, "event": "api_call") go to their own log bucket with a
# stated retention.
resource "google_logging_project_bucket_config" "audit" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "${var.name_prefix}-audit"
  retention_days = var.audit_log_retention_days
  description    = "Push365 API call records: identifying parameters, status, counts, faults, duration. No request bodies."
}

resource "google_logging_project_sink" "audit" {
  project                = var.project_id
  name                   = "${var.name_prefix}-audit"
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.audit.id}"
  filter                 = "resource.type=\"cloud_run_revision\" AND jsonPayload.event=\"api_call\""
  unique_writer_identity = true
}
