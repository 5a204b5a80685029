"""The local stack: the Firestore emulator, a local FCM v1 server, every function under one URL.

Used by ``make dev`` (``python -m devstack``) and by the tests, so both run the same parts.
"""
