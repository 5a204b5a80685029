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

  apis = [
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "artifactregistry.googleapis.com",
    "firestore.googleapis.com",
    "fcm.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
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
