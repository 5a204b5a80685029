"""deliver's time budget: every wait is shorter than what contains it, written down and checked.

The names are those of docs/api/deliver.md ("The time budget"); the inequalities are what
exactly-once rests on:

- ``request <= chunk``: one FCM request fits in a chunk's budget (``fcm_http_timeout_seconds``,
  ``deliver_chunk_budget_seconds``).
- ``chunk + store + clock_skew < lease``: a chunk's requests all end before the lease its claim
  took runs out, even when the claim's write took the whole store timeout and the next worker's
  clock runs ahead; a worker never sends while another may hold the batch. (The worker also
  caps each chunk's deadline at the lease itself, so this holds whatever the settings.)
- ``chunk <= handler``: a whole chunk fits in one handler.
- ``handler + 2 x store + queue < function_timeout``: after its last request the handler has
  time to record the outcomes, retire dead tokens and publish a continuation, and answers
  before the platform cuts it off (a cut-off request goes on running on Cloud Functions while
  Pub/Sub redelivers: the handler's own deadline is what prevents that).
- ``function_timeout <= ack_deadline``: Pub/Sub does not redeliver a message whose handler is
  still running.
- ``retry_horizon + ack_deadline + max_backoff < retention``: a batch failing transiently is
  given up (recorded failed) before its message could expire on the subscription.
"""

from __future__ import annotations

from dataclasses import dataclass

from push365.fanout.publisher import publish_wait_seconds
from push365.settings import Settings


@dataclass(frozen=True)
class TimeBudget:
    """The times deliver works within, in seconds."""

    request: float
    chunk: float
    store: float
    queue: float
    lease: float
    handler: float
    clock_skew: float
    function_timeout: float
    ack_deadline: float
    retry_horizon: float
    max_backoff: float
    retention: float

    @classmethod
    def of(
        cls, settings: Settings, function_timeout: float, ack_deadline: float, retention: float
    ) -> TimeBudget:
        """The budget of these settings, with the platform's numbers (from infra/)."""
        return cls(
            request=settings.fcm_http_timeout_seconds,
            chunk=settings.deliver_chunk_budget_seconds,
            store=settings.store_timeout_seconds,
            # a publish waits its retries' deadline and a margin more for the last answer
            queue=publish_wait_seconds(settings.queue_timeout_seconds),
            lease=settings.deliver_lease_seconds,
            handler=settings.deliver_handler_seconds,
            clock_skew=settings.deliver_clock_skew_seconds,
            function_timeout=function_timeout,
            ack_deadline=ack_deadline,
            retry_horizon=settings.retry_horizon_seconds,
            max_backoff=settings.retry_max_backoff_seconds,
            retention=retention,
        )

    def violations(self) -> list[str]:
        """The inequalities that do not hold (empty when the budget is sound)."""
        rules = {
            "request <= chunk": self.request <= self.chunk,
            "chunk + store + clock_skew < lease": self.chunk + self.store + self.clock_skew
            < self.lease,
            "chunk <= handler": self.chunk <= self.handler,
            "handler + 2 x store + queue < function_timeout": self.handler
            + 2 * self.store
            + self.queue
            < self.function_timeout,
            "function_timeout <= ack_deadline": self.function_timeout <= self.ack_deadline,
            "retry_horizon + ack_deadline + max_backoff < retention": self.retry_horizon
            + self.ack_deadline
            + self.max_backoff
            < self.retention,
        }
        return [rule for rule, holds in rules.items() if not holds]
