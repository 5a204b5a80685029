"""Quotas on every route: per organization and route (per caller on a route without a key),
documented limits per minute and per day, counted in fixed windows in Firestore so that every
instance of every function counts the same calls (README "Quotas").

The registration throttles (``push365.signup``) count in the same windows with the same
counter (:func:`push365.quotas.repository.count_hits`)."""

from push365.quotas.model import QUOTA_CLASSES, QuotaClass, Window
from push365.quotas.service import QuotaService

__all__ = ["QUOTA_CLASSES", "QuotaClass", "QuotaService", "Window"]
