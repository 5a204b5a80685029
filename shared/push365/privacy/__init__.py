"""Customers' rights under the privacy policy: access (export) and erasure, for a user or a whole
organization. Correction is the register and users update paths."""
