locals {
  # One source of truth for every function's settings, read by Terraform (and so by Cloud Build,
  # which runs this configuration).
  functions = jsondecode(file("${path.module}/functions.json"))
  indexes   = jsondecode(file("${path.module}/firestore_indexes.json"))

  base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net"

  # Roles every function's own service account gets, besides those functions.json names.
  common_roles = ["roles/logging.logWriter"]
  function_roles = merge([
    for name, function in local.functions : {
      for role in concat(local.common_roles, function.roles) : "${name} ${role}" => {
        function = name
        role     = role
      }
    }
  ]...)

  # The documented roles of a function's build service account (functions.tf); its third, Storage
  # Object Admin, only on the buckets a build reads its source from (functions.tf).
  build_roles = [
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ]

  # The service accounts a function checks its callers against, from its "callers" in
  # functions.json: {"ENV_VARIABLE": "account key"}. purge accepts only the Cloud Scheduler
  # account's OIDC token (scheduler.tf).
  caller_accounts = {
    purge_scheduler = google_service_account.purge_scheduler.email
  }
  function_callers = {
    for name, function in local.functions : name => {
      for variable, account in lookup(function, "callers", {}) : variable => local.caller_accounts[account]
    }
  }

  # The Pub/Sub topics a function may publish to, from its "publishes" in functions.json:
  # {"ENV_VARIABLE": "topic key"}. The function gets the topic's id in that environment variable
  # and roles/pubsub.publisher on that topic alone (pubsub.tf).
  topic_ids = {
    fanout = google_pubsub_topic.fanout.name
  }
  function_topics = {
    for name, function in local.functions : name => {
      for variable, topic in lookup(function, "publishes", {}) : variable => local.topic_ids[topic]
    }
  }
  function_publishers = merge([
    for name, function in local.functions : {
      for topic in distinct(values(lookup(function, "publishes", {}))) : "${name} ${topic}" => {
        function = name
        topic    = topic
      }
    }
  ]...)

  # Every API the stack uses, enabled before anything that needs it: every service account and
  # IAM binding depends_on these (a first apply in an empty project must not race them).
  apis = [
    "cloudresourcemanager.googleapis.com", # project IAM bindings and data.google_project
    "serviceusage.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "artifactregistry.googleapis.com",
    "firestore.googleapis.com",
    "fcm.googleapis.com",
    "fcmregistrations.googleapis.com",      # the browser's getToken() (Firebase JS SDK)
    "firebaseinstallations.googleapis.com", # the installation ids behind web tokens
    "firebase.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "clouderrorreporting.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # OIDC tokens signed for Cloud Scheduler and Pub/Sub push
  ]
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
