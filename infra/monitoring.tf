# What operators see: log-based metrics from the audit records (one per API call, "event":
# "api_call"; docs/operations/monitoring.md, "The audit log"), alert policies on them, and a dashboard. The metrics are
# defined in metrics.json, which tests/integration/test_observability.py checks against the records
# the functions really write: every field a filter, value extractor or label names is there, with
# the type the metric expects.
locals {
  # Every metric with every attribute ("value", "unit", "buckets", "labels" are optional in
  # metrics.json): a metric with a value is a distribution of that field, the others count records.
  metrics = {
    for key, metric in jsondecode(file("${path.module}/metrics.json")) : key => {
      description = metric.description
      filter      = metric.filter
      value       = lookup(metric, "value", null)
      unit        = lookup(metric, "unit", "1")
      buckets     = [for b in [lookup(metric, "buckets", null)] : b if b != null]
      labels      = lookup(metric, "labels", {})
    }
  }
  # Metric names without "/" or "-", so PromQL names them plainly:
  # logging.googleapis.com/user/push365_requests is logging_googleapis_com:user_push365_requests.
  metric_prefix = replace(var.name_prefix, "-", "_")
  metric_types = {
    for key, _ in local.metrics : key => "logging.googleapis.com/user/${google_logging_metric.audit[key].name}"
  }
  # Every condition below watches the functions' own records.
  on_functions = "resource.type=\"cloud_run_revision\""
}

resource "google_logging_metric" "audit" {
  for_each    = local.metrics
  project     = var.project_id
  name        = "${local.metric_prefix}_${each.key}"
  description = each.value.description
  filter      = "${local.on_functions} AND ${each.value.filter}"

  value_extractor  = each.value.value == null ? null : "EXTRACT(${coalesce(each.value.value, "-")})"
  label_extractors = { for key, label in each.value.labels : key => "EXTRACT(${label.field})" }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "Push365 ${replace(each.key, "_", " ")}"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = labels.value.type
        description = "From ${labels.value.field}."
      }
    }
  }

  # Distributions only: their exponential buckets (a list of none or one).
  dynamic "bucket_options" {
    for_each = each.value.buckets
    content {
      exponential_buckets {
        num_finite_buckets = bucket_options.value.num_finite_buckets
        growth_factor      = bucket_options.value.growth_factor
        scale              = bucket_options.value.scale
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# More than 1% of all calls answered 5xx, for 5 minutes.
resource "google_monitoring_alert_policy" "server_errors" {
  project               = var.project_id
  display_name          = "Push365: over 1% of calls answered 5xx"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx answers / all answers > 1% for 5 minutes"
    condition_threshold {
      filter             = "metric.type=\"${local.metric_types["server_errors"]}\" AND ${local.on_functions}"
      denominator_filter = "metric.type=\"${local.metric_types["requests"]}\" AND ${local.on_functions}"
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.01
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** over 1% of Push365's API calls were answered 5xx for 5 minutes: Dataverse retries asynchronous steps, but synchronous ones fail for users.\n\n**What to do:** the dashboard's faults chart names the fault codes: `store_unavailable` is Firestore (its status page, quotas), `queue_unavailable` Pub/Sub, `internal` a crash (Error Reporting names the code location). A deploy just before points at the change: roll back by reverting it."
  }
}

# The daily purge keeps the privacy policy's 30-day promise: no successful run for 26 hours (one
# missed day plus the scheduler's retries) alerts. A metric-absence condition allows at most
# 23.5 hours, so this is PromQL's absent_over_time. A metric that has never had a point is absent
# too, so on its own this would fire on every fresh deployment until the first purge: it is
# silent until 26 hours after the purge job was created (the first scheduled run, at most 24 hours
# away, plus its retries), the time time_offset.purge_alert_from records once (a new job, a new
# time).
resource "time_offset" "purge_alert_from" {
  offset_hours = 26
  triggers = {
    job = google_cloud_scheduler_job.purge.id
  }
}

resource "google_monitoring_alert_policy" "purge_missed" {
  project               = var.project_id
  display_name          = "Push365: no successful purge in 26 hours"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "no purge answered 200 in 26 hours"
    condition_prometheus_query_language {
      query                     = "absent_over_time(logging_googleapis_com:user_${google_logging_metric.audit["purge_successes"].name}{monitored_resource=\"cloud_run_revision\"}[26h]) and on() (vector(time()) > ${time_offset.purge_alert_from.unix})"
      duration                  = "0s"
      evaluation_interval       = "300s"
      disable_metric_validation = true
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** purge has not answered 200 for 26 hours (silent for the first 26 hours after its job was created). Unsubscribed and stale tokens must be gone within 30 days (privacy policy); each tombstone's `purge_by` leaves one day to spare, so a second missed day breaks the promise.\n\n**What to do:** look at the Cloud Scheduler job `${var.name_prefix}-purge` (paused? its last attempt's status) and purge's audit records (`jsonPayload.function=\"purge\"`: status and `fault.code`); the scheduler-failure alert names a refused call. Once fixed, run the job now (`gcloud scheduler jobs run ${var.name_prefix}-purge --location ${var.region}`)."
  }
}

# Alerts on any occurrence within 5 minutes of a counted record (metrics.json).
locals {
  occurrence_alerts = {
    # FCM rejected the project's credentials: nothing reaches any browser until this is fixed.
    fcm_auth = {
      metric       = "fcm_auth_failures"
      display_name = "Push365: FCM rejects the project's credentials"
      condition    = "a batch with FCM auth failures"
      severity     = "CRITICAL"
      runbook      = "**What it means:** FCM answered THIRD_PARTY_AUTH_ERROR or SENDER_ID_MISMATCH: the web push credentials (VAPID key, APNs) or the Firebase project do not match, and no notification reaches a browser. Administrators get a delivery alert mail too.\n\n**What to do:** compare the web app's Firebase configuration and VAPID key (Firebase console, Project settings > Cloud Messaging) with what the web resources were built with, and deliver's project (`GOOGLE_CLOUD_PROJECT`) with the Firebase project; fix, then send a test notification."
    }
    # A batch Pub/Sub gave up on: its devices were recorded as failed.
    dead_letters = {
      metric       = "dead_lettered_batches"
      display_name = "Push365: fan-out batches dead-lettered"
      condition    = "a batch reached the dead-letter topic"
      severity     = "ERROR"
      runbook      = "**What it means:** Pub/Sub gave up on a fan-out batch after 20 attempts; deliver recorded its devices as failed (`counts.dead_lettered`): those devices did not get the notification.\n\n**What to do:** find why deliver kept failing: its faults and 5xx answers before this (dashboard), crashes in Error Reporting. The send's status (`GET <send URL>/status`) counts the dead-lettered devices; the sender can send again once deliver is fixed."
    }
    # The reconciler gave up a send: its fan-out messages were lost (no message could come).
    reconcile_given_up = {
      metric       = "reconcile_given_up"
      display_name = "Push365: the reconciler gave up a send whose messages were lost"
      condition    = "reconcile recorded a send as lost"
      severity     = "ERROR"
      runbook      = "**What it means:** a send was still unfinished once no fan-out message for it could come any more (older than the subscription's 2-hour retention): its messages were lost (the subscription deleted or recreated, messages expired while deliver failed, a publish that never happened). Its devices without an outcome are recorded failed, reason `lost`; its status ends `sent` or `failed`. Content is never stored, so nothing can be sent again from here.\n\n**What to do:** reconcile's audit record counts the sends (`jsonPayload.function=\"reconcile\"`); look for what lost the messages at that time: the fan-out subscription's history (deleted, recreated, detached), deliver's 5xx and faults before, the backlog alert. The sender can send again."
    }
    # A push deliver refused: malformed, or with the right ids but not bound to its notification.
    refused_messages = {
      metric       = "refused_messages"
      display_name = "Push365: deliver refused a message not bound to its notification"
      condition    = "deliver answered invalid_message"
      severity     = "WARNING"
      runbook      = "**What it means:** deliver refused a push that is not a fan-out message, or whose content, seal or recipients are not the ones send bound to the notification (docs/api/deliver.md): nothing was sent or changed for it.\n\n**What to do:** only the fan-out topic's publishers (send's and deliver's accounts) and deliver's invokers can put one there: check the topic's and deliver's IAM bindings and the Pub/Sub data access logs, and deliver's audit records (`jsonPayload.fault.code=\"invalid_message\"`) for the ids it named."
    }
  }
}

resource "google_monitoring_alert_policy" "occurrence" {
  for_each              = local.occurrence_alerts
  project               = var.project_id
  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = "metric.type=\"${local.metric_types[each.value.metric]}\" AND ${local.on_functions}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.runbook
  }
}

# send answers within Dynamics' patience: its 95th percentile over 5 seconds, for 5 minutes.
resource "google_monitoring_alert_policy" "send_latency" {
  project               = var.project_id
  display_name          = "Push365: send's p95 answer time over 5 s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "p95 of send's duration_ms > 5000 for 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_types["duration_ms"]}\" AND ${local.on_functions} AND metric.label.function=\"send\""
      comparison      = "COMPARISON_GT"
      threshold_value = 5000
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** send's answer time (p95) has been over 5 seconds for 5 minutes: Dataverse waits at most 60 s, and a slow send holds up a synchronous step.\n\n**What to do:** look at the faults chart: `store_unavailable` / `queue_unavailable` point at Firestore or Pub/Sub; otherwise at send's instances (max instances reached, cold starts) in Cloud Run's metrics for `${var.name_prefix}-send`."
  }
}

# A stuck fan-out: a message on one of this stack's subscriptions (fanout and its dead letters,
# and any added later: every subscription is named "<name_prefix>-...") unacknowledged for 30
# minutes. deliver retries a batch's transient failures for an hour, and a message is kept 2
# hours: this leaves 90 minutes before its content expires.
resource "google_monitoring_alert_policy" "fanout_backlog" {
  project               = var.project_id
  display_name          = "Push365: fan-out message unacknowledged for 30 minutes"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "oldest unacknowledged message of a subscription > 1800 s for 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=starts_with(\"${var.name_prefix}-\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 1800
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** a message on subscription $${resource.label.subscription_id} has waited over 30 minutes to be acknowledged: notifications are late, and Pub/Sub keeps a message only 2 hours (a batch is dead-lettered before, a message deliver never takes is lost).\n\n**What to do:** look at deliver's answers to Pub/Sub (5xx, faults, crashes in Error Reporting; FCM 429s or an FCM outage make it retry) and at `${var.name_prefix}-deliver`'s instances (max instances reached?). On the dead-letter subscription it means deliver cannot record dead letters."
  }
}

# A daily export that failed: Firestore's admin activity audit log entry for the export operation
# with an error status (refused at the start, or failed when it ended). A job that could not even
# call Firestore is the scheduler alert's.
resource "google_monitoring_alert_policy" "export_failed" {
  project               = var.project_id
  display_name          = "Push365: a Firestore export failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "an ExportDocuments audit entry with an error"
    condition_matched_log {
      filter = "protoPayload.methodName=\"google.firestore.admin.v1.FirestoreAdmin.ExportDocuments\" AND (severity>=ERROR OR protoPayload.status.code>0)"
    }
  }

  # A log-match condition needs a notification rate limit.
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** the daily Firestore export to `${google_storage_bucket.backups.name}` failed: today's backup is missing (the older ones are still there, each deleted by 180 days).\n\n**What to do:** read the audit entry's `protoPayload.status` (a permission refused: the Firestore service agent's `roles/storage.objectAdmin` on the bucket; a quota or an internal error: run it again with `gcloud scheduler jobs run ${var.name_prefix}-firestore-export --location ${var.region}`)."
  }
}

# Every Cloud Scheduler job of this stack, including any added later: each is named
# "<name_prefix>-..." (tests/unit/test_infra_alerts.py checks every google_cloud_scheduler_job
# against this filter). Cloud Scheduler logs each attempt; a failed one is logged as an error.
resource "google_monitoring_alert_policy" "scheduler_failed" {
  project               = var.project_id
  display_name          = "Push365: a Cloud Scheduler job failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "a failed attempt of a ${var.name_prefix} scheduler job"
    condition_matched_log {
      filter = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=~\"^${var.name_prefix}-\" AND severity>=ERROR"
      label_extractors = {
        job = "EXTRACT(resource.labels.job_id)"
      }
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "**What it means:** an attempt of the Cloud Scheduler job $${log.extracted_label.job} failed (the purge, the Firestore export, or any other job of this stack); a job with retries left tries again.\n\n**What to do:** the log entry's `jsonPayload.status` and the target's answer say why: 401/403 is the job's account (its invoker or export role), 5xx or a deadline the target itself (purge's audit records, Firestore's status). Run the job again once fixed (`gcloud scheduler jobs run <job> --location ${var.region}`)."
  }
}

# The dashboard (dashboard.json): calls, 5xx, latency, fan-out counts, faults, purge.
resource "google_monitoring_dashboard" "push365" {
  project = var.project_id
  dashboard_json = templatefile("${path.module}/dashboard.json", {
    title   = "Push365 (${var.name_prefix})"
    metrics = local.metric_types
    promql  = { for key, _ in local.metrics : key => "logging_googleapis_com:user_${google_logging_metric.audit[key].name}" }
  })
  depends_on = [google_project_service.apis]
}
