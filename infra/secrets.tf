# Purge has no key in production: it checks the OIDC identity of its one caller, the Cloud
# Scheduler account (scheduler.tf, push365.retention.caller). The admin key is for local use only
# (`make dev`), so no secret of Push365's own is kept here; only the SES credentials below, which the
# operator stores.

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

  depends_on = [google_project_service.apis]
}
