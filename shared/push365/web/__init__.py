"""HTTP translation shared by the Cloud Functions' entry points."""

from push365.web.api import (
    ADMIN_KEY_HEADER,
    API_KEY_HEADER,
    API_KEY_QUERY,
    Api,
    ApiRequest,
    Cors,
    Handler,
    Page,
    Reply,
    ignored,
    json_errors,
)
from push365.web.openapi import Operation

__all__ = [
    "ADMIN_KEY_HEADER",
    "API_KEY_HEADER",
    "API_KEY_QUERY",
    "Api",
    "ApiRequest",
    "Cors",
    "Handler",
    "Operation",
    "Page",
    "Reply",
    "ignored",
    "json_errors",
]
