"""Delivery through Firebase Cloud Messaging: the gateway port and its firebase-admin adapter.

firebase-admin is imported only when the first message is sent (``firebase.py``), so functions
that never send do not pay for it at cold start.
"""
