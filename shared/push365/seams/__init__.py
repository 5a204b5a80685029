"""Every use of a third-party library's private parts, one module per library.

Push365 reaches into a few libraries' internals where they offer no public way to do what it
needs (raw protobuf reads and writes on Firestore's own channel, firebase-admin's own encoder
and error classification, gRPC's single-threaded streams, Cloud Logging's request fields). Each
such use is a small named function in the module of its library, with a docstring saying which
private part it uses and why, and each module names the version it was checked against
(``CHECKED_AGAINST``): ``tests/unit/test_seams.py`` fails on another version, and on a private
name used anywhere else (``shared/``, ``functions/``, ``devstack/``, ``bench/``).

Every module imports its library lazily where the library is heavy (firebase-admin, Cloud
Logging): importing a seam costs nothing until it is used.
"""

from __future__ import annotations

from importlib.metadata import version


def check_version(module: str, distribution: str, checked_against: str, uses: str) -> str | None:
    """None if ``distribution`` is at ``checked_against``, otherwise what to do about it."""
    found = version(distribution)
    if found == checked_against:
        return None
    return (
        f"{module} was checked against {distribution} {checked_against}; found {found}: "
        f"re-check {uses} and update CHECKED_AGAINST"
    )
