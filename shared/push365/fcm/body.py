"""FCM request bodies exactly as firebase-admin's ``send_each`` sends them, its encoder run once
per batch (a template per kind of message, the per-device values set into it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from push365.fcm.firebase import _to_message, token_field
from push365.fcm.model import PushMessage, TokenKind
from push365.seams import firebase_admin as firebase_seam


def body(message: PushMessage) -> bytes:
    """The request body exactly as firebase-admin's ``send_each`` sends it (``requests``' json=)."""
    return dumps(encoded(message))


def bodies(messages: Sequence[PushMessage]) -> list[bytes]:
    """Each message's body, as :func:`body` makes it, firebase-admin's encoder run once per
    batch: a batch's messages differ only in their token and their devices' data values (each
    device's receipt), which that encoder passes through as they are once it has checked they
    are strings (the token a non-empty one); here they are checked the same and set into its
    output for the batch, as JSON strings set into its JSON text (:class:`Template`).
    ``tests/unit/test_fcm_wire.py`` compares every body with firebase-admin's own."""
    templates: dict[tuple[int, TokenKind, tuple[str, ...]], Template | None] = {}
    out = []
    for message in messages:
        if not (isinstance(message.token, str) and message.token) or not all(
            isinstance(v, str) for v in message.device_data.values()
        ):
            out.append(body(message))  # firebase-admin's encoder says what is wrong
            continue
        key = (id(message.push), message.token_kind, tuple(message.device_data))
        if key not in templates:
            templates[key] = Template.of(message)
        template = templates[key]
        out.append(body(message) if template is None else template.render(message))
    return out


class Template:
    """One encoded message as JSON text with a hole for each value that differs by device: the
    token and the device's own data values. ``json.dumps`` writes a string the same wherever it
    stands, so a body is the text with each hole filled with its value's ``json.dumps``."""

    def __init__(self, parts: list[str], keys: tuple[str, ...], slots: tuple[int, ...]) -> None:
        self._parts = parts  # the text around the holes
        self._keys = keys  # the device data keys, in the message's order
        self._slots = slots  # per hole in text order: 0 the token, k the (k-1)th key's value

    @classmethod
    def of(cls, message: PushMessage) -> Template | None:
        """The template of messages like this one; None if the text did not split as planned."""
        import uuid

        marker = f"push365-{uuid.uuid4().hex}-"
        fields = dict(encoded(message))
        fields[token_field(message)] = f"{marker}0"
        keys = tuple(message.device_data)
        if "data" in fields:  # (no data at all: the encoder leaves the field out)
            data = {**message.push.data, **message.device_data}
            for slot, key in enumerate(keys, start=1):
                data[key] = f"{marker}{slot}"
            fields["data"] = data
        first, *rest = dumps(fields).decode("ascii").split(f'"{marker}')
        parts, slots = [first], []
        for piece in rest:  # each starts with its slot's number, then the closing quote
            number, _, after = piece.partition('"')
            if not number.isdigit():
                return None
            slots.append(int(number))
            parts.append(after)
        expected = range(len(keys) + 1) if "data" in fields else range(1)
        if sorted(slots) != list(expected):
            return None  # the marker stood in the content too: encode each message whole
        return cls(parts, keys, tuple(slots))

    def render(self, message: PushMessage) -> bytes:
        values = [message.token, *(message.device_data[key] for key in self._keys)]
        parts = self._parts
        out = [parts[0]]
        for slot, part in zip(self._slots, parts[1:], strict=True):
            out.append(json.dumps(values[slot]))
            out.append(part)
        return "".join(out).encode("ascii")


def encoded(message: PushMessage) -> dict[str, Any]:
    """The message as firebase-admin's own encoder makes it (what goes under ``"message"``).

    Raises:
        ValueError: the encoder refused the message (as ``send_each`` does).
    """
    return firebase_seam.encode_message(_to_message(message))


def payload_bytes(message: PushMessage) -> int:
    """The bytes of ``message`` FCM counts against its payload limit: firebase-admin's own
    encoding of it (:func:`encoded`) without what addresses it (the token) and without the
    ``webpush.headers`` (sent to the browser's push service as HTTP headers, outside the
    payload), as compact UTF-8 JSON."""
    fields = dict(encoded(message))
    fields.pop(token_field(message), None)
    webpush = fields.get("webpush")
    if isinstance(webpush, dict):
        fields["webpush"] = {name: value for name, value in webpush.items() if name != "headers"}
    return len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode())


def dumps(fields: dict[str, Any]) -> bytes:
    """The request body of an encoded message, as ``requests``' ``json=`` writes it."""
    return json.dumps({"message": fields}, allow_nan=False).encode("utf-8")
