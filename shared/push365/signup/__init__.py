"""Signup: operator-issued, single-use codes that let one organization id be registered, and
the throttles on registration attempts."""
