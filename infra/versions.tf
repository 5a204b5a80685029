terraform {
  required_version = ">= 1.5"

  required_providers {
    # 6.13 is the first with an alert condition's disable_metric_validation (monitoring.tf).
    google = {
      source  = "hashicorp/google"
      version = "~> 6.13"
    }
    # google_project_service_identity (the Firestore service agent, firestore.tf) is in the
    # beta provider only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.13"
    }
    # 2.5.0 is the first release whose archive_file excludes take globs (functions.tf).
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
    # time_offset: when the purge alert may first fire (monitoring.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # State lives in a bucket the operator creates once (docs/operations/deploying.md).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
