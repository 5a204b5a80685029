terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State lives in a bucket the operator creates once (README, "Deploying to Google Cloud").
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
