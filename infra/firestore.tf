resource "google_firestore_database" "default" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  depends_on                        = [google_project_service.apis]
}

# Composite indexes the code's queries need (firestore_indexes.json, derived from the code by
# `python -m push365.indexes` and checked against it by tests/unit/test_infra.py).
resource "google_firestore_index" "composite" {
  for_each    = { for index in local.indexes.composite_indexes : "${index.collection}:${join(",", index.fields)}" => index }
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = each.value.collection
  query_scope = each.value.query_scope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
}

# Purge's range queries run over collection groups: their fields need that scope's index.
resource "google_firestore_field" "retention" {
  for_each   = { for index in local.indexes.collection_group_field_indexes : "${index.collection}.${index.field}" => index }
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
    indexes {
      order = "ASCENDING"
    }
    indexes {
      order = "DESCENDING"
    }
  }
}

# A batch's large fields no query filters on (its id lists, outcome maps, delivery records and
# receipt hashes, all JSON text): no single-field indexes, so a write does not index them.
resource "google_firestore_field" "unindexed" {
  for_each   = { for field in local.indexes.unindexed_fields : "${field.collection}.${field.field}" => field }
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}

# A Firestore TTL policy on the one retention field: a backstop for purge.
resource "google_firestore_field" "ttl" {
  for_each   = toset(local.indexes.ttl_collections)
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value
  field      = local.indexes.ttl_field

  # A TTL field needs no index of its own.
  index_config {}
  ttl_config {}
}
