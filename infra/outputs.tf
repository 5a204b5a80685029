output "function_urls" {
  description = "Every function's URL: register these as Dataverse webhook endpoints."
  value       = { for name, function in google_cloudfunctions2_function.function : name => function.service_config[0].uri }
}

output "backup_bucket" {
  description = "Where the daily Firestore exports go (deleted at 180 days)."
  value       = google_storage_bucket.backups.name
}

output "solution_bucket" {
  description = "Where the pipeline stores the Dynamics 365 solution zips (gcloud storage ls gs://<this>/)."
  value       = google_storage_bucket.solution.name
}

output "fanout_topic" {
  description = "The fan-out topic: send publishes notifications, deliver their batches; deliver receives them by push."
  value       = google_pubsub_topic.fanout.id
}
