"""The Bot Connector's documented send limits, kept as a scheduling decision.

Microsoft documents, per bot and per conversation ("thread"), for sending to a conversation: 7 messages in 1 s,
8 in 2 s, 60 in 30 s and 1800 in 3600 s (Teams platform docs, "Optimize your bot with rate limiting and best
practices", per bot per thread limit), and asks bots to back off on HTTP 429. :class:`Windows` answers the outbox's
``reserve``: take a slot in every window now (0), or say how long until all of them have room, taking nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: (seconds, sends) per conversation, from the Teams documentation's per-bot-per-thread table.
PER_CONVERSATION: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
#: Sends per second across one tenant, shared by every worker. Microsoft documents 50 requests per second per app
#: per tenant for bots; Blendwise keeps well below it, since replies to actions share the allowance.
TENANT_RATE = 30.0


class Windows:
    """Sliding-window limits per conversation (thread-safe, in memory)."""

    def __init__(
        self, limits: tuple[tuple[float, int], ...] = PER_CONVERSATION, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._span = max(seconds for seconds, _ in limits)
        self._monotonic = monotonic
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str) -> float:
        """Take a slot for ``key`` now and return 0, or return the seconds until every window has room."""
        with self._lock:
            now = self._monotonic()
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0] <= now - self._span:
                sent.popleft()
            wait = 0.0
            for seconds, most in self._limits:
                inside = [t for t in sent if t > now - seconds]
                if len(inside) >= most:
                    wait = max(wait, inside[len(inside) - most] + seconds - now)
            if wait > 0:
                return wait
            sent.append(now)
            if len(self._sent) > 50_000:
                for stale in [k for k, v in self._sent.items() if not v or v[-1] <= now - self._span]:
                    del self._sent[stale]
            return 0.0

    def defer(self, key: str, seconds: float) -> None:
        """Teams answered 429 for ``key``: fill its shortest window until ``seconds`` from now."""
        with self._lock:
            now = self._monotonic()
            window, most = self._limits[0]
            sent = self._sent.setdefault(key, deque())
            sent.extend([now + seconds - window] * most)
