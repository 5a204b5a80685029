# What operators see: log-based metrics from the audit records (one per API call, "event":
# "api_call"; README, "The audit log"), alert policies on them, and a dashboard. The metrics are
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
    content   = "Over 1% of Push365's API calls were answered 5xx for 5 minutes. The dashboard's faults chart names the fault codes; `store_unavailable` is Firestore, `queue_unavailable` Pub/Sub, `internal` a crash (Error Reporting)."
  }
}

# The daily purge keeps the privacy policy's 30-day promise: no successful run for 26 hours (one
# missed day plus the scheduler's retries) alerts. A metric-absence condition allows at most
# 23.5 hours, so this is PromQL's absent_over_time.
resource "google_monitoring_alert_policy" "purge_missed" {
  project               = var.project_id
  display_name          = "Push365: no successful purge in 26 hours"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "no purge answered 200 in 26 hours"
    condition_prometheus_query_language {
      query                     = "absent_over_time(logging_googleapis_com:user_${google_logging_metric.audit["purge_successes"].name}{monitored_resource=\"cloud_run_revision\"}[26h])"
      duration                  = "0s"
      evaluation_interval       = "300s"
      disable_metric_validation = true
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Purge has not succeeded for 26 hours: unsubscribed tokens must be gone within 30 days (privacy policy). Check the Cloud Scheduler job `${var.name_prefix}-purge` and purge's audit records (`jsonPayload.function=\"purge\"`)."
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
      runbook      = "FCM answered THIRD_PARTY_AUTH_ERROR or SENDER_ID_MISMATCH: the web push credentials (VAPID key, APNs) or the Firebase project do not match. Administrators get a delivery alert mail too."
    }
    # A batch Pub/Sub gave up on: its devices were recorded as failed.
    dead_letters = {
      metric       = "dead_lettered_batches"
      display_name = "Push365: fan-out batches dead-lettered"
      condition    = "a batch reached the dead-letter topic"
      severity     = "ERROR"
      runbook      = "Pub/Sub gave up on a fan-out batch after 20 attempts; deliver recorded its devices as failed (`counts.dead_lettered`). Look for deliver's faults and 5xx answers before it."
    }
    # A push deliver refused: malformed, or with the right ids but not bound to its notification.
    refused_messages = {
      metric       = "refused_messages"
      display_name = "Push365: deliver refused a message not bound to its notification"
      condition    = "deliver answered invalid_message"
      severity     = "WARNING"
      runbook      = "deliver refused a push that is not a fan-out message or whose content, seal or recipients are not the ones send bound to the notification (README, deliver): nothing was sent or changed. Only the fan-out topic's publishers (send's and deliver's accounts) and deliver's invokers can get one there: check the topic's and deliver's IAM bindings and the Pub/Sub data access logs, and deliver's audit records (`jsonPayload.fault.code=\"invalid_message\"`) for the ids it named."
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
    content   = "send's answer time (p95) is over 5 seconds: Dataverse waits at most 60 s and a slow send holds up a synchronous step. `store_unavailable` / `queue_unavailable` faults point at Firestore or Pub/Sub."
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
