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

# The _Default log bucket exists in every project (Cloud Logging creates it): Terraform adopts it
# and sets its retention; destroying this resource leaves the bucket as it is. Everything not
# excluded below lands there: the functions' own output, Cloud Build's logs (the pipeline's,
# cloudbuild.yaml's CLOUD_LOGGING_ONLY, and every function build's), Cloud Scheduler's attempts.
resource "google_logging_project_bucket_config" "default" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "_Default"
  retention_days = var.default_log_retention_days
}

# Cloud Run writes a request log for every call with its full URL, where an organization key sent
# as `?code=` would be kept: the functions' request logs are not stored at all (an exclusion on the
# _Default sink; the audit sink's filter takes only the API call records). Every function of this
# stack runs as a Cloud Run service named "<name_prefix>-<function>"; other services in the
# project keep their request logs.
resource "google_logging_project_exclusion" "request_logs" {
  project     = var.project_id
  name        = "${var.name_prefix}-request-logs"
  description = "Push365's functions' Cloud Run request logs: their URLs may hold an organization key (?code=)."
  filter      = "resource.type=\"cloud_run_revision\" AND log_id(\"run.googleapis.com/requests\") AND resource.labels.service_name=~\"^${var.name_prefix}-\""
}
