"""Push365 domain library: the use cases behind every Cloud Function, split by concern.

- ``organizations``: registration, API keys, authentication.
- ``users``: the organization's Dynamics system users.
- ``subscriptions``: browsers (FCM instance ids) that opted in, and opting out.
- ``dataverse``: parsing Dataverse ``RemoteExecutionContext`` webhook bodies.
- ``retention``: how long each kind of record may live.
- ``web``: HTTP translation shared by the entry points in ``functions/``.
"""
