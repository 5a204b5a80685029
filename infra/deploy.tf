# The account Cloud Build runs the pipeline as (cloudbuild.yaml; docs/operations/deploying.md,
# "The pipeline"): named, instead of whatever default build account the project has. It applies this
# configuration, so it needs to manage everything this configuration manages, and nothing else:
# one role per kind of resource below, not Owner or Editor, none that reads the data
# (docs/operations/iam.md). The first apply is an owner's; from then on the pipeline runs as this account.
# What it cannot do is left to an owner's apply: its own roles, the Firestore database's settings,
# a new service account's bindings (tests/unit/test_infra_iam.py lists every binding).
locals {
  deployer_roles = [
    "roles/browser",                        # read the project (data.google_project)
    "roles/serviceusage.serviceUsageAdmin", # google_project_service, the Firestore service agent
    "roles/iam.serviceAccountCreator",      # new service accounts (and nothing on other accounts)
    "roles/iam.serviceAccountViewer",       # read them; the rest per account, below
    "roles/cloudfunctions.developer",       # the functions (their IAM is Cloud Run's)
    "roles/run.admin",                      # invoker bindings on the functions' Cloud Run services
    "roles/pubsub.admin",                   # topics, subscriptions, their bindings
    "roles/cloudscheduler.admin",           # purge and export jobs
    "roles/datastore.indexAdmin",           # indexes, single-field settings, TTL policies; no data
    "roles/logging.configWriter",           # log buckets, sink, exclusion, log-based metrics
    "roles/logging.logWriter",              # the build's own logs (CLOUD_LOGGING_ONLY)
    "roles/monitoring.editor",              # alert policies and the dashboard
  ]

  # Roles only some settings need.
  deployer_optional_roles = {
    "roles/secretmanager.admin"      = var.mail_backend == "ses"   # bindings on the SES secrets
    "roles/cloudbuild.builds.editor" = var.github_repository != "" # the trigger on main
  }

  # The project-level roles this configuration grants to the stack's other accounts
  # (functions.json and the functions' common role, the build and export accounts): the only
  # roles the deployer may grant or revoke on the project. Never its own, so it cannot raise its
  # own roles (an owner applies a change to them).
  deployer_grantable_roles = [
    "roles/artifactregistry.writer",
    "roles/datastore.importExportAdmin",
    "roles/datastore.user",
    "roles/firebasecloudmessaging.admin",
    "roles/logging.logWriter",
    "roles/storage.objectAdmin",
  ]

  # Two roles only under a condition: granting no other roles than those above, and Cloud
  # Storage's administration without the Firestore exports' content.
  deployer_conditional_roles = {
    "roles/resourcemanager.projectIamAdmin" = {
      title       = "only the stack's own grants"
      description = "Grant or revoke only the project roles infra/ gives the stack's accounts."
      expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(${jsonencode(local.deployer_grantable_roles)})"
    }
    "roles/storage.admin" = {
      title       = "not the exports"
      description = "Buckets, their settings and bindings, the source objects; never an object of the backups bucket."
      expression  = "!resource.name.startsWith(\"projects/_/buckets/${var.project_id}-${var.name_prefix}-backups/objects/\")"
    }
  }
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
}

resource "google_project_iam_member" "deployer_optional" {
  for_each   = { for role, needed in local.deployer_optional_roles : role => role if needed }
  project    = var.project_id
  role       = each.value
  member     = "serviceAccount:${google_service_account.deployer.email}"
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "deployer_conditional" {
  for_each = local.deployer_conditional_roles
  project  = var.project_id
  role     = each.key
  member   = "serviceAccount:${google_service_account.deployer.email}"

  condition {
    title       = each.value.title
    description = each.value.description
    expression  = each.value.expression
  }

  depends_on = [google_project_service.apis]
}

# Deploying a function, a scheduler job or a push subscription that runs as an account needs
# permission to act as it, and managing an account (its settings, its bindings) Service Account
# Admin on it: both granted on each of this stack's accounts, not on the project, so the deployer
# can neither act as nor grant anything on any other account of the project.
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

resource "google_service_account_iam_member" "deployer_admin" {
  for_each           = local.deployer_acts_as
  service_account_id = each.value
  role               = "roles/iam.serviceAccountAdmin"
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
# repository, so no ignore file is involved; `gcloud builds submit` (docs/operations/deploying.md) needs one.
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
