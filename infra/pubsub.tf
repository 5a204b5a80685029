# The fan-out: send publishes a notification (rendered, with its recipients) to the fanout topic;
# a push subscription hands each message to the private deliver function, which publishes the
# notification's batches of at most 500 devices to the same topic and sends each batch through FCM.
# A message Pub/Sub cannot get acknowledged goes to the dead-letter topic, whose own push
# subscription hands it to deliver again to be recorded as failed: counted, never silently dropped.
#
# How long the content lives on Pub/Sub: deliver retries transient FCM failures up to a horizon of
# 1 hour after the send, then records the devices as failed and acknowledges. The subscriptions
# keep an unacknowledged message 2 hours (7200 s): the horizon plus room for the dead-letter
# forwarding, and no longer, since the message holds the notification's text. The topics retain
# nothing themselves (no message_retention_duration) and acknowledged messages are not retained.
#
# Dead-lettering must happen inside that retention, or an expired message would vanish without a
# trace. Each delivery attempt lasts at most the ack deadline (60 s, the push request's timeout and
# deliver's own timeout) and the wait before the next is at most maximum_backoff, so the 20th
# attempt has ended within 19 x 300 s + 20 x 60 s = 6900 s < 7200 s. (With a 600 s maximum backoff
# the same bound is 12600 s: a poison batch could expire before its 20th attempt.) With Pub/Sub's
# exponential backoff from 10 s, 20 failed attempts take at least about
# 10 + 20 + 40 + 80 + 160 + 14 x 300 = 4510 s, so a batch failing only transiently reaches deliver's
# 1-hour horizon before the dead-letter topic.

resource "google_pubsub_topic" "fanout" {
  project = var.project_id
  name    = "${var.name_prefix}-fanout"

  # The notification's content stays in the functions' region.
  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.apis]
  # checkov:skip=CKV_GCP_83:Messages (a rendered notification) live at most 2 hours and are encrypted at rest by Google; a customer-managed key would add a key ring to operate for content that expires within hours.
}

resource "google_pubsub_topic" "fanout_dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-fanout-dead-letter"

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.apis]
  # checkov:skip=CKV_GCP_83:Messages (a rendered notification) live at most 2 hours and are encrypted at rest by Google; a customer-managed key would add a key ring to operate for content that expires within hours.
}

# The identity Pub/Sub signs its push requests as (an OIDC token for deliver's URL). It has one
# permission: invoking deliver.
resource "google_service_account" "pubsub_push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-pubsub-push"
  display_name = "Push365 Pub/Sub push to deliver"
  depends_on   = [google_project_service.apis]
}

resource "google_cloud_run_service_iam_member" "deliver_invoker" {
  project    = var.project_id
  location   = var.region
  service    = google_cloudfunctions2_function.function["deliver"].service_config[0].service
  role       = "roles/run.invoker"
  member     = "serviceAccount:${google_service_account.pubsub_push.email}"
  depends_on = [google_project_service.apis]
}

locals {
  deliver_url = google_cloudfunctions2_function.function["deliver"].service_config[0].uri
  # Pub/Sub's service agent: it mints the push tokens and forwards dead letters.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription" "deliver" {
  project = var.project_id
  name    = "${var.name_prefix}-deliver"
  topic   = google_pubsub_topic.fanout.id

  # The push request's timeout, equal to deliver's timeout_seconds (functions.json).
  ack_deadline_seconds = 60

  # The retry horizon is 1 hour; the content must not stay longer than needed (see the top).
  message_retention_duration = "7200s"
  retain_acked_messages      = false

  # A quiet week must not delete the subscription.
  expiration_policy {
    ttl = ""
  }

  # The path names the topic: functions-framework turns a push request into a CloudEvent whose
  # source is "//pubsub.googleapis.com/" plus the path's projects/P/topics/T (it drops the push
  # body's "subscription" and "deliveryAttempt"), so deliver can tell a dead letter apart by its
  # source as well as by the CloudPubSubDeadLetter* attributes Pub/Sub adds. The token's audience
  # is the service URL itself, which Cloud Run checks.
  push_config {
    push_endpoint = "${local.deliver_url}/${google_pubsub_topic.fanout.id}"

    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.deliver_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "300s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.fanout_dead_letter.id
    max_delivery_attempts = 20
  }

  depends_on = [
    google_cloud_run_service_iam_member.deliver_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

# Dead-lettered batches go to deliver too, which records them as failed. No dead-letter policy of
# its own: it retries until deliver has recorded the batch, within the same 2-hour retention
# (counted from the forwarding).
resource "google_pubsub_subscription" "deliver_dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-deliver-dead-letter"
  topic   = google_pubsub_topic.fanout_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "7200s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = "${local.deliver_url}/${google_pubsub_topic.fanout_dead_letter.id}"

    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.deliver_url
    }
  }

  retry_policy {
    minimum_backoff = "30s"
    maximum_backoff = "300s"
  }

  depends_on = [google_cloud_run_service_iam_member.deliver_invoker]
}

# Functions that publish (functions.json "publishes": send its plans, deliver their batches, to
# fanout): publisher on that topic only, not on the project.
resource "google_pubsub_topic_iam_member" "function_publisher" {
  for_each   = local.function_publishers
  project    = var.project_id
  topic      = local.topic_ids[each.value.topic]
  role       = "roles/pubsub.publisher"
  member     = "serviceAccount:${google_service_account.function[each.value.function].email}"
  depends_on = [google_project_service.apis]
}

# Dead-lettering: the service agent publishes to the dead-letter topic and acknowledges the
# forwarded message on the source subscription (google_pubsub_subscription docs, dead_letter_policy).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project    = var.project_id
  topic      = google_pubsub_topic.fanout_dead_letter.name
  role       = "roles/pubsub.publisher"
  member     = local.pubsub_service_agent
  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.deliver.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
  depends_on   = [google_project_service.apis]
}

# Pub/Sub's docs: a project whose Pub/Sub service agent was enabled on or before 8 April 2021 must
# give it the Service Account Token Creator role to sign push tokens; newer projects need nothing.
# Granted on the push account alone (not the project), it makes either kind of project work.
resource "google_service_account_iam_member" "pubsub_push_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
  depends_on         = [google_project_service.apis]
}
