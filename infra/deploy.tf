# The account Cloud Build runs the pipeline as (cloudbuild.yaml; README, "Deploying to Google
# Cloud"): named, instead of whatever default build account the project has. It applies this
# configuration, so it needs to manage everything this configuration manages, and nothing else:
# one role per kind of resource below, not Owner or Editor. The first apply is an operator's; from
# then on the pipeline runs as this account.
locals {
  deployer_roles = [
    "roles/browser",                         # read the project (data.google_project)
    "roles/serviceusage.serviceUsageAdmin",  # google_project_service, the Firestore service agent
    "roles/resourcemanager.projectIamAdmin", # google_project_iam_member
    "roles/iam.serviceAccountAdmin",         # the functions', build, scheduler and push accounts
    "roles/cloudfunctions.admin",            # the functions
    "roles/run.admin",                       # invoker bindings on the functions' Cloud Run services
    "roles/storage.admin",                   # source and backup buckets, their bindings
    "roles/pubsub.admin",                    # topics, subscriptions, their bindings
    "roles/cloudscheduler.admin",            # purge and export jobs
    "roles/secretmanager.admin",             # bindings on the SES secrets
    "roles/datastore.owner",                 # database, indexes, TTL policies
    "roles/logging.configWriter",            # log bucket, sink, log-based metrics
    "roles/logging.logWriter",               # the build's own logs (CLOUD_LOGGING_ONLY)
    "roles/monitoring.editor",               # alert policies and the dashboard
  ]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-deployer"
  display_name = "Push365 Cloud Build deployer"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "deployer" {
  for_each   = toset(local.deployer_roles)
  project    = var.project_id
  role       = each.value
  member     = "serviceAccount:${google_service_account.deployer.email}"
  depends_on = [google_project_service.apis]
  # checkov:skip=CKV_GCP_49:The deployer creates and manages this stack's service accounts (functions, build, scheduler, push); Service Account Admin is the role for that. It acts as them only through the per-account grants below, never project-wide.
}

# Deploying a function, a scheduler job or a push subscription that runs as an account needs
# permission to act as it: granted on each of this stack's accounts, not on the project.
locals {
  deployer_acts_as = merge(
    { for name, _ in local.functions : "function ${name}" => google_service_account.function[name].name },
    {
      build           = google_service_account.build.name
      purge_scheduler = google_service_account.purge_scheduler.name
      backup          = google_service_account.backup.name
      pubsub_push     = google_service_account.pubsub_push.name
    },
  )
}

resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each           = local.deployer_acts_as
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
  depends_on         = [google_project_service.apis]
}

# Terraform's state: the one bucket outside this configuration the deployer must write.
resource "google_storage_bucket_iam_member" "deployer_state" {
  count      = var.tf_state_bucket == "" ? 0 : 1
  bucket     = var.tf_state_bucket
  role       = "roles/storage.objectAdmin"
  member     = "serviceAccount:${google_service_account.deployer.email}"
  depends_on = [google_project_service.apis]
}

# Optional: a build on every push to main, run as the deployer (github_repository = "owner/name",
# with the Cloud Build GitHub app installed on that repository). A trigger builds a checkout of the
# repository, so no ignore file is involved; `gcloud builds submit` (README) needs one.
resource "google_cloudbuild_trigger" "main" {
  count           = var.github_repository == "" ? 0 : 1
  project         = var.project_id
  location        = "global"
  name            = "${var.name_prefix}-main"
  description     = "Lint, test, plan and apply Push365 on every push to main."
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.deployer.id
  substitutions = {
    _TF_STATE_BUCKET = var.tf_state_bucket
  }

  github {
    owner = split("/", var.github_repository)[0]
    name  = split("/", var.github_repository)[1]
    push {
      branch = "^main$"
    }
  }

  depends_on = [google_project_service.apis]
}
