variable "project_id" {
  description = "The Google Cloud project Push365 runs in."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler jobs and the buckets."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region or a multi-region such as eur3)."
  type        = string
  default     = "eur3"
}

variable "name_prefix" {
  description = "Prefix of every resource name, so several stacks can share a project."
  type        = string
  default     = "push365"
}

variable "purge_schedule" {
  description = "When Cloud Scheduler calls purge (cron, UTC)."
  type        = string
  default     = "15 3 * * *"
}

variable "backup_schedule" {
  description = "When the Firestore export to the backup bucket runs (cron, UTC)."
  type        = string
  default     = "45 2 * * *"
}

variable "backup_retention_days" {
  description = "Days after which a backup object is deleted (Cloud Storage acts within about a day). The privacy policy promises removal from backups within 180 days."
  type        = number
  default     = 178

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 178
    error_message = "The privacy policy promises removal from backups within 180 days: at most 178 (the age rule and then the noncurrent-version rule each run up to a day late)."
  }
}

variable "audit_log_retention_days" {
  description = "Days the API call records are kept in their log bucket."
  type        = number
  default     = 90
}

variable "default_log_retention_days" {
  description = "Days the _Default log bucket keeps what lands there: the functions' output, Cloud Build's and Cloud Scheduler's logs (never the functions' request logs: logging.tf)."
  type        = number
  default     = 30

  validation {
    condition     = var.default_log_retention_days >= 1 && var.default_log_retention_days <= 180
    error_message = "Cloud Logging keeps a bucket's logs 1 to 3650 days; no copy may outlive the privacy policy's 180 days: 1 to 180."
  }
}

variable "notification_retention_days" {
  description = "Days notification records (metadata only) are kept before purge deletes them."
  type        = number
  default     = 90
}

variable "mail_backend" {
  description = "Transactional mail to administrators: \"ses\" (Amazon SES) or \"none\"."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "ses"], var.mail_backend)
    error_message = "mail_backend is \"ses\" or \"none\"."
  }
}

variable "ses_sender" {
  description = "A verified SES identity to send administrators' mail from (with mail_backend = \"ses\")."
  type        = string
  default     = ""
}

variable "ses_region" {
  description = "The AWS region of the SES identity."
  type        = string
  default     = "eu-west-1"
}

variable "aws_access_key_id_secret" {
  description = "Secret Manager secret id holding the SES IAM user's access key id (with mail_backend = \"ses\")."
  type        = string
  default     = "push365-aws-access-key-id"
}

variable "aws_secret_access_key_secret" {
  description = "Secret Manager secret id holding the SES IAM user's secret access key (with mail_backend = \"ses\")."
  type        = string
  default     = "push365-aws-secret-access-key"
}

variable "tf_state_bucket" {
  description = "The bucket holding Terraform's state (created once by hand): the deployer account may write it."
  type        = string
  default     = ""
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/ID) every alert policy notifies."
  type        = list(string)
  default     = []
}

variable "github_repository" {
  description = "owner/name of the GitHub repository a Cloud Build trigger deploys from on every push to main (the Cloud Build GitHub app installed on it); empty: no trigger."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || length(split("/", var.github_repository)) == 2
    error_message = "github_repository is \"owner/name\" or empty."
  }
}

variable "solution_retention_days" {
  description = "Days the pipeline's Dynamics 365 solution zips are kept after the build that stored them (each pipeline run stores the current version again)."
  type        = number
  default     = 365

  validation {
    condition     = var.solution_retention_days >= 1
    error_message = "At least one day."
  }
}
