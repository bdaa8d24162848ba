"""Send pacing and inbound replay protection, both in memory and thread-safe.

Slack allows about one chat.postMessage per second per channel, with a further workspace-wide budget; bursts
beyond that earn HTTP 429. The :class:`Pacer` hands out send slots in advance, so concurrent senders never collide,
and the caller sleeps until its slot. Only the outbound sender path waits on it: request handlers ack first.

Slack retries an event it thinks was not acknowledged (``X-Slack-Retry-Num``) and proxies may replay requests.
:class:`SeenKeys` remembers recently handled keys so the same work is not started twice in this process; the core
still dedupes durably with ``dedupe_key``, which also covers a restart between the two attempts.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Pacing keeps this much above each channel interval, so network jitter does not turn a paced post into a 429.
HEADROOM = 1.1
#: The shared workspace budget runs this much below the configured rate: posts are spaced evenly across workers,
#: so a small margin is enough to keep 429s rare (21 evenly spaced posts span 1.02 s, not 1 s) while the ceiling is
#: 98 % of the allowance. 4 % was measured to cost more in rate than its few avoided 429s (docs/performance.md).
WORKSPACE_HEADROOM = 1.02


class Pacer:
    """Reserves send slots: one post per ``per_channel_interval`` seconds in a channel, and at most
    ``workspace_rate`` posts per second across a workspace.

    Args:
        per_channel_interval: minimum seconds between two posts to the same channel.
        workspace_rate: posts per second allowed across one workspace.
        monotonic: the time source (injected by tests).
    """

    def __init__(
        self,
        per_channel_interval: float = 1.0,
        workspace_rate: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_channel_interval < 0:
            raise ValueError("per_channel_interval must not be negative")
        if workspace_rate <= 0:
            raise ValueError("workspace_rate must be positive")
        self._channel_gap = per_channel_interval
        self._workspace_gap = 1.0 / workspace_rate
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._channel_next: dict[tuple[str, str], float] = {}
        self._workspace_slots: dict[str, list[float]] = {}

    def reserve(self, workspace: str, channel: str) -> float:
        """Take the next free slot for a post to ``channel``; returns how many seconds to wait before sending.

        The slot is the earliest time that respects the channel's interval and keeps ``1 / workspace_rate`` from
        every other reserved slot in the workspace, so a post to a quiet channel can go between two posts to a busy
        one instead of queueing behind it.
        """
        with self._lock:
            now = self._monotonic()
            key = (workspace, channel)
            slots = [t for t in self._workspace_slots.get(workspace, []) if t > now - self._workspace_gap]
            slot = max(now, self._channel_next.get(key, now))
            for taken in slots:  # sorted
                if taken + self._workspace_gap <= slot:
                    continue
                if slot + self._workspace_gap <= taken:
                    break
                slot = taken + self._workspace_gap
            slots.append(slot)
            slots.sort()
            self._workspace_slots[workspace] = slots
            self._channel_next[key] = slot + self._channel_gap
            if len(self._channel_next) > 10_000:
                self._prune(now)
            return slot - now

    def try_reserve(self, workspace: str, channel: str) -> float:
        """Take the channel's slot if it is free now (returns 0), else return the seconds until it is, taking
        nothing: the caller schedules other work meanwhile instead of sleeping.

        Only the per-channel interval is checked, with 10 % headroom so that jitter between two requests never
        brings them closer than Slack's limit; the workspace budget is shared by every worker and kept by the
        outbox (:mod:`bot.nudges.budget`).
        """
        with self._lock:
            now = self._monotonic()
            key = (workspace, channel)
            slot = self._channel_next.get(key, now)
            if slot > now:
                return slot - now
            self._channel_next[key] = now + self._channel_gap * HEADROOM
            if len(self._channel_next) > 10_000:
                self._prune(now)
            return 0.0

    def channel_wait(self, workspace: str, channel: str) -> float:
        """Seconds until :meth:`try_reserve` would take the channel's slot, taking nothing."""
        with self._lock:
            return max(0.0, self._channel_next.get((workspace, channel), 0.0) - self._monotonic())

    def defer(self, workspace: str, channel: str, seconds: float) -> None:
        """Slack answered 429 for this channel: hold its next slot back by ``seconds``."""
        with self._lock:
            key = (workspace, channel)
            self._channel_next[key] = max(self._channel_next.get(key, 0.0), self._monotonic() + seconds)

    def _prune(self, now: float) -> None:
        for key in [k for k, slot in self._channel_next.items() if slot <= now]:
            del self._channel_next[key]


class SeenKeys:
    """Keys of recently handled inbound requests, kept for ``ttl`` seconds (bounded to ``max_size`` entries)."""

    def __init__(
        self, ttl: float = 900.0, max_size: int = 50_000, monotonic: Callable[[], float] = time.monotonic
    ):
        self._ttl = ttl
        self._max_size = max_size
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str | None) -> bool:
        """Record ``key``; ``True`` if it was not seen within the TTL. A missing key is always new."""
        if key is None:
            return True
        with self._lock:
            now = self._monotonic()
            while self._seen and (
                next(iter(self._seen.values())) <= now - self._ttl or len(self._seen) >= self._max_size
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True
