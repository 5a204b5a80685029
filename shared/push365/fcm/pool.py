"""The HTTP port's pool of keep-alive connections on its event loop: slots (requests in flight
at most), idle connections, and one request's exchange within its time budget.

A connection is never reused after anything unexpected (a timeout, a parse error, a close), and
nothing is ever sent twice here: a request that may have reached FCM is answered ``RETRY``,
maybe delivered, for the caller to decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from push365.fcm.answers import classify_answer
from push365.fcm.model import Outcome, SendResult
from push365.fcm.protocol import Answer, Connection, ConnectionLost

if TYPE_CHECKING:
    import ssl

# A keep-alive connection idle for longer is not used again (aiohttp's default, what came before).
IDLE_SECONDS = 15.0


class ConnectionPool:
    """Up to ``size`` keep-alive connections to ``host``:``port`` (TLS with ``tls``), each
    request within ``timeout`` seconds from when it has a slot. Lives on one event loop: made,
    used and shut there. ``rejected(authorization)`` is called when FCM answers 401 to a request
    sent with that Authorization header (the caller refreshes its credentials)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        size: int,
        timeout: float,
        rejected: Callable[[str | None], None],
    ) -> None:
        self._host = host
        self._port = port
        self._ssl = tls
        self._size = size
        self._timeout = timeout
        self._rejected = rejected
        self._slots = asyncio.Semaphore(size)
        self._reserving = asyncio.Lock()  # one whole-batch reservation at a time
        self._idle: list[Connection] = []

    async def shut(self) -> None:
        # Sends still running end now (their connections closed, never back in a pool), so that
        # no caller waits on a loop that is about to stop.
        sending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def send_all(
        self, requests: list[bytes], authorization: str | None, deadline: float | None
    ) -> list[SendResult]:
        # Let the loop first take in what happened while it was idle (or the instance frozen): a
        # keep-alive connection the server closed is then dropped, not written to and lost.
        for _ in range(2):
            await asyncio.sleep(0)
        # One sender per connection the batch can use, each taking the next request in turn.
        results: list[SendResult | None] = [None] * len(requests)
        turns = iter(range(len(requests)))
        # A request starts only with this long left before the deadline.
        needs = 0.0
        if deadline is not None:
            needs = min(self._timeout, deadline - asyncio.get_running_loop().time())

        async def sender() -> None:
            for index in turns:
                results[index] = await self._send_one(
                    requests[index], authorization, deadline, needs
                )

        await asyncio.gather(*(sender() for _ in range(min(self._size, len(requests)))))
        answered = [result for result in results if result is not None]
        assert len(answered) == len(requests)  # _send_one answers whatever happens
        return answered

    async def _send_one(
        self, request: bytes, authorization: str | None, deadline: float | None, needs: float
    ) -> SendResult:
        async with self._slots:
            # The loop's clock is time.monotonic(): the deadline is read on it directly.
            budget = self._timeout
            if deadline is not None:
                budget = min(budget, deadline - asyncio.get_running_loop().time())
                if budget <= 0 or budget < needs:
                    return SendResult(Outcome.RETRY, reason="deadline")  # never started
            return await self._exchange(request, authorization, budget, None)

    async def send_reserved(
        self,
        requests: list[bytes],
        authorization: str | None,
        deadline: float | None,
        before_writing: Callable[[], None],
    ) -> list[SendResult]:
        """Every slot and connection first, then ``before_writing``, then every request at once:
        between the caller's claim and the writes there is no wait on FCM or another batch."""
        if len(requests) > self._size:
            raise ValueError("a reserved batch is no larger than the pool")
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # take in connections the server closed while idle
        left = self._timeout if deadline is None else deadline - loop.time()
        needs = min(self._timeout, left)
        not_started = [SendResult(Outcome.RETRY, reason="deadline")] * len(requests)
        held = 0
        connections: list[Connection] = []
        handed = False
        try:
            try:
                async with asyncio.timeout(max(left - needs, 0.0) if deadline else self._timeout):
                    async with self._reserving:  # two reservations never hold part each
                        for _ in requests:
                            await self._slots.acquire()
                            held += 1
                    for _ in requests:
                        connections.append(self._idle_connection() or await self._connect())
            except (TimeoutError, OSError):
                return not_started
            await asyncio.to_thread(before_writing)  # the caller's claim; raises: nothing sent
            budget = self._timeout
            if deadline is not None:
                budget = min(budget, deadline - loop.time())
                if budget <= 0:
                    return not_started
            handed = True
            sent = await asyncio.gather(
                *(
                    self._exchange(request, authorization, budget, connection)
                    for request, connection in zip(requests, connections, strict=True)
                )
            )
            return list(sent)
        finally:
            if not handed:
                for connection in connections:
                    connection.idle_since = loop.time()
                    self._idle.append(connection)
            for _ in range(held):
                self._slots.release()

    async def _exchange(
        self,
        request: bytes,
        authorization: str | None,
        budget: float,
        held: Connection | None,
    ) -> SendResult:
        """One request on ``held`` (or a connection of the pool) within ``budget`` seconds."""
        written = False  # once written, the request may have reached FCM
        connection: Connection | None = held
        answer: Answer | None = None
        try:
            async with asyncio.timeout(budget):
                if connection is None:
                    connection = self._idle_connection() or await self._connect()
                written = connection.usable  # request() writes at once if it is
                answer = await connection.request(request)
        except TimeoutError:
            # Written but unanswered: FCM may have accepted it (the caller may re-send once).
            return SendResult(
                Outcome.RETRY,
                reason="timeout" if written else "connection",
                maybe_delivered=written,
            )
        except (OSError, ConnectionLost):
            # Refused or reset: if before the request was written, FCM never saw it.
            return SendResult(Outcome.RETRY, reason="connection", maybe_delivered=written)
        except Exception:  # noqa: BLE001 - one message's surprise must not fail the others
            return SendResult(Outcome.FAILED, reason="error", maybe_delivered=written)
        finally:
            if connection is not None:
                if answer is not None and connection.usable:
                    connection.idle_since = asyncio.get_running_loop().time()
                    self._idle.append(connection)
                else:
                    connection.close()  # never read on after anything unexpected
        try:
            result = classify_answer(answer.status, answer.headers, answer.body)
        except Exception:  # noqa: BLE001 - FCM answered: it may have taken the message
            return SendResult(Outcome.FAILED, reason="error", maybe_delivered=True)
        if answer.status == 401 and result.reason == "error":
            self._rejected(authorization)  # refreshed before the next batch
        return result

    def _idle_connection(self) -> Connection | None:
        """The most recently used idle connection; those idle for longer than IDLE_SECONDS are
        closed instead (a server or a NAT on the way may have dropped them without a word)."""
        oldest = asyncio.get_running_loop().time() - IDLE_SECONDS
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and connection.idle_since >= oldest:
                return connection
            connection.close()
        return None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        # With TLS, asyncio checks the certificate against the host name (SNI too).
        _, connection = await loop.create_connection(
            Connection, self._host, self._port, ssl=self._ssl
        )
        return connection
