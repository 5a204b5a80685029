# The variables every apply uses, Cloud Build's and an operator's alike: Terraform loads
# *.auto.tfvars by itself, so a pipeline run can no longer reset what an operator chose with -var.
# Change a setting here and commit it; the pipeline passes only project_id (its own project).
# Variables not named here keep their defaults (variables.tf).
region             = "europe-west1"
firestore_location = "eur3"
name_prefix        = "push365"

# Mail to administrators (docs/mail.md): "none" or "ses".
mail_backend = "none"
ses_sender   = ""
ses_region   = "eu-west-1"

# Terraform's state bucket (docs/operations/deploying.md): the deployer may write it.
tf_state_bucket = ""

# A Cloud Build trigger on every push to main, run as the deployer: "owner/name", or "" for none.
github_repository = ""

# Where alerts go: Cloud Monitoring notification channels, "projects/<project>/notificationChannels/<id>".
notification_channels = []
