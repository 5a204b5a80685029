"""Delivery through Firebase Cloud Messaging: the gateway port and its firebase-admin adapter.

firebase-admin is imported only when it is first needed: the first message sent
(``firebase.py``, ``http.py``), or the first message measured against FCM's payload limit
(``body.payload_bytes``, from ``send``'s size check); functions that do neither never pay for it
at cold start. Its private parts are used only through :mod:`push365.seams.firebase_admin`.

``http.py`` (the pooled HTTP/1.1 gateway) by concern: ``loop.py`` (the event loop's thread),
``pool.py`` (keep-alive connections, slots, one exchange), ``protocol.py`` (HTTP/1.1 with
httptools), ``body.py`` (firebase-admin's request bodies, per-batch templates, payload size),
``answers.py`` (FCM's answers, classified as firebase-admin classifies them).
"""
