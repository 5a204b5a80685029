# The key purge's caller must present, generated here: nothing to create or paste by hand.
resource "random_password" "admin_key" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "admin_key" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-admin-key"

  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "admin_key" {
  secret      = google_secret_manager_secret.admin_key.id
  secret_data = random_password.admin_key.result
}

resource "google_secret_manager_secret_iam_member" "purge" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.admin_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["purge"].email}"
}

# With mail_backend = "ses", every function may read the AWS key pair it sends mail with.
locals {
  aws_secrets = var.mail_backend == "ses" ? {
    AWS_ACCESS_KEY_ID     = var.aws_access_key_id_secret
    AWS_SECRET_ACCESS_KEY = var.aws_secret_access_key_secret
  } : {}
  aws_secret_readers = merge([
    for name, _ in local.functions : {
      for variable, secret in local.aws_secrets : "${name} ${variable}" => {
        function = name
        secret   = secret
      }
    }
  ]...)
}

resource "google_secret_manager_secret_iam_member" "aws" {
  for_each  = local.aws_secret_readers
  project   = var.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}
