"""One HTTP/1.1 keep-alive connection to FCM: an asyncio protocol with ``httptools`` (the C
binding of llhttp, Node's parser) reading the answers.

What the port needs of HTTP is small and fixed: ``POST`` with a length, one request at a time on
a connection, answers framed by length or chunks and possibly gzip- or deflate-coded (it asks as
``requests`` asks). A connection is never reused after anything unexpected (a close, an answer
nobody asked for, bytes that are not HTTP/1.1): an answer can never be read as another
request's.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import NamedTuple

# What requests (and so firebase-admin) asks for: the answers this port can decode.
ACCEPT_ENCODING = "gzip, deflate"
# The largest answer body taken, decoded (FCM's are under 1 KB).
MAX_ANSWER_BYTES = 1 << 20


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionLost(Exception):
    """The connection ended, or answered what HTTP/1.1 does not allow, before the whole answer."""


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, ``usable`` until anything unexpected:
    a close, an answer nobody asked for, bytes that are not HTTP/1.1."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._coding = b""
        self.usable = True
        self.idle_since = 0.0

    async def request(self, data: bytes) -> Answer:
        if not self.usable or self._transport is None or self._transport.is_closing():
            raise ConnectionLost
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.abort()  # nothing of ours is left to write

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._lost()  # bytes nobody asked for: nothing on this connection is trusted again
            return
        try:
            self._parser.feed_data(data)
        except Exception:  # noqa: BLE001 - httptools.HttpParserError and its kin
            self._lost()

    def eof_received(self) -> bool:
        self._lost()  # an answer framed by the close is not one FCM sends: never half-read
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-encoding":
            self._coding = value.strip().lower()
        self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._lost()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body = decoded(b"".join(self._body), self._coding)
        headers = self._headers
        self._headers, self._body, self._coding, self._size = {}, [], b"", 0
        if 100 <= status < 200 and status != 101:
            return  # informational: the answer follows (requests never shows these either)
        answer = Answer(status, headers, body)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            self._lost()  # an answer nobody asked for
            return
        if not self._parser.should_keep_alive():
            self.close()
        waiter.set_result(answer)

    def _lost(self) -> None:
        self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost())


def decoded(body: bytes, coding: bytes) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip or deflate, what is asked for, raw
    deflate too, as urllib3 takes it); one that does not decode, is coded otherwise or decodes to
    more than MAX_ANSWER_BYTES reads as empty (no message name: classified as ``send_each``
    classifies a body it cannot read)."""
    if not coding or coding == b"identity":
        return body
    tries = {
        b"gzip": (16 + zlib.MAX_WBITS,),
        b"x-gzip": (16 + zlib.MAX_WBITS,),
        b"deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
    }.get(coding, ())
    for wbits in tries:
        decoder = zlib.decompressobj(wbits)
        try:
            data = decoder.decompress(body, MAX_ANSWER_BYTES)
        except zlib.error:
            continue
        return b"" if decoder.unconsumed_tail else data
    return b""
