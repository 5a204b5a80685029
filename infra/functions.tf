# The source upload: the repository as gcloud would upload it, .gcloudignore honoured.
data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/push365-source.zip"
  # Each pattern, and everything below it when it names a directory.
  excludes = flatten([
    for line in split("\n", file("${path.module}/../.gcloudignore")) : [
      trimprefix(trimspace(line), "/"),
      "${trimprefix(trimspace(line), "/")}/**",
    ] if trimspace(line) != "" && !startswith(trimspace(line), "#")
  ])
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
    }
    action {
      type = "Delete"
    }
  }
  # checkov:skip=CKV_GCP_62:Access logs of a bucket holding only build sources add nothing the audit log of Cloud Storage does not.
}

resource "google_storage_bucket_object" "source" {
  name   = "source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_service_account" "function" {
  for_each     = local.functions
  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "Push365 ${each.key} function"
  depends_on   = [google_project_service.apis]
}

# Least privilege: each function's account has only the roles functions.json gives it.
resource "google_project_iam_member" "function" {
  for_each   = local.function_roles
  project    = var.project_id
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.function[each.value.function].email}"
  depends_on = [google_project_service.apis]
}

# The account Cloud Build builds every function's container as (build_config.service_account).
# Projects created since mid-2024 may have no default build account with the roles a function
# build needs; naming one makes a first apply independent of the project's age. Its roles are the
# ones Google documents for a function's build service account (Cloud Run, "Build service
# account"): build logs, the image in Artifact Registry, the source from Cloud Storage.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Push365 function builds"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "build" {
  for_each   = toset(local.build_roles)
  project    = var.project_id
  role       = each.value
  member     = "serviceAccount:${google_service_account.build.email}"
  depends_on = [google_project_service.apis]
}

# Storage Object Admin, which Google documents for reading the function's source, on the buckets
# a build reads it from and on nothing else (not project-wide, where it would reach the Firestore
# exports): this configuration's source bucket and the one Cloud Functions copies each source to,
# gcf-v2-sources-<project number>-<region> (created by Cloud Functions, so not bound by name).
locals {
  build_buckets = [
    google_storage_bucket.source.name,
    "gcf-v2-sources-${data.google_project.this.number}-${var.region}",
  ]
}

resource "google_project_iam_member" "build_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "function sources only"
    description = "The source bucket of infra/ and Cloud Functions' own source bucket."
    expression  = join(" || ", [for bucket in local.build_buckets : "resource.name == \"projects/_/buckets/${bucket}\" || resource.name.startsWith(\"projects/_/buckets/${bucket}/\")"])
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "function" {
  for_each    = local.functions
  project     = var.project_id
  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = "python311"
    entry_point     = each.key
    service_account = google_service_account.build.id
    environment_variables = {
      # The Python buildpack loads the function from this file instead of main.py.
      GOOGLE_FUNCTION_SOURCE = "functions/${each.key}.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory               = each.value.memory
    timeout_seconds                = each.value.timeout_seconds
    max_instance_count             = each.value.max_instances
    service_account_email          = google_service_account.function[each.key].email
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    # Every function's settings, plus the ids of the topics it publishes to (functions.json
    # "publishes", main.tf).
    # LOG_EXECUTION_ID is set by Cloud Functions itself: declared here, or every plan would show
    # it as a change and redeploy every function.
    environment_variables = merge({
      LOG_EXECUTION_ID                    = "true"
      GOOGLE_CLOUD_PROJECT                = var.project_id
      PUSH365_NOTIFICATION_RETENTION_DAYS = tostring(var.notification_retention_days)
      PUSH365_RECEIPT_URL                 = "${local.base_url}/${var.name_prefix}-receipt"
      PUSH365_FUNCTION_URL_TEMPLATE       = "${local.base_url}/${var.name_prefix}-{function}"
      PUSH365_MAIL_BACKEND                = var.mail_backend
      PUSH365_SES_SENDER                  = var.ses_sender
      PUSH365_SES_REGION                  = var.ses_region
    }, local.function_topics[each.key], local.function_callers[each.key])

    # Amazon SES credentials, from secrets the operator stored (docs/mail.md).
    dynamic "secret_environment_variables" {
      for_each = local.aws_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build,
    google_project_iam_member.build_sources,
    google_secret_manager_secret_iam_member.aws,
  ]
  # checkov:skip=CKV_GCP_124:Dataverse webhooks, Cloud Scheduler and Pub/Sub push reach the functions from outside any VPC; callers are authenticated by organization key, receipt token, or IAM (purge, deliver).
}

# Webhook functions are public: Dataverse cannot present Google credentials, so each function
# authenticates its callers itself (organization key, receipt token). Purge (Cloud Scheduler,
# scheduler.tf) and deliver (Pub/Sub push, pubsub.tf) are private: one account each may invoke them.
resource "google_cloud_run_service_iam_member" "public" {
  for_each = { for name, function in local.functions : name => function if function.public }
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
  # An organization policy restricting domains (iam.allowedPolicyMemberDomains) refuses allUsers:
  # docs/operations/deploying.md, "From an empty project to the first notification", names the
  # exception to ask for.
  depends_on = [google_project_service.apis]
  # checkov:skip=CKV_GCP_102:Dataverse webhooks cannot send Google credentials; the functions check an organization key in constant time.
}
