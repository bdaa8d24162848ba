"""The in-process adapters the benchmarks drain through (one definition, shared by every script).

``NullAdapter`` accepts every message at once; ``PacedAdapter`` behaves like Slack's limits: 50 ms a call, at most
1 post/s per channel and 20/s per workspace, answering anything faster with a 429 (``AdapterError`` with
``retry_after``). Both remember what they got, so the scripts can check for lost, duplicated and out-of-order
messages.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from bot.adapters.slack.pacing import WORKSPACE_HEADROOM
from bot.errors import AdapterError
from bot.messages import Message, MessageRef
from bot.ports import Adapter, ChannelTarget, Profile, Recipient


class NullAdapter(Adapter):
    """Accepts every message at once and remembers it: ``sent`` holds ``(user or channel, delivery id, part,
    fingerprint)`` and ``times`` the monotonic time of each, in the order they arrived."""

    platform = "console"

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int, str]] = []
        self.times: list[float] = []
        self.rejected = 0
        self._lock = threading.Lock()
        self._seq = 0

    def start(self, dispatcher: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    def _record(self, channel: str, message: Message) -> MessageRef:
        with self._lock:
            self._seq += 1
            self.sent.append((channel, message.delivery_id or 0, message.part, f"{message.title}|{message.text[:60]}"))
            self.times.append(time.monotonic())
            return MessageRef(self.platform, channel, str(self._seq))

    def send_direct(self, to: Recipient, message: Message) -> MessageRef:
        return self._record(f"D-{to.user_id}", message)

    def send_channel(self, workspace: str, channel: str, message: Message, thread: str | None = None) -> MessageRef:
        return self._record(channel, message)

    def update(self, ref: MessageRef, message: Message) -> None:
        pass

    def profile(self, workspace: str, user_id: str) -> Profile | None:
        return None


class PacedAdapter(NullAdapter):
    """50 ms a call, at most 1 post/s per channel and ``rate`` posts/s per workspace; an over-limit call is a 429.

    It declares its limits as the Slack adapter does (``workspace_rate`` with the same headroom, a per-channel
    ``reserve``/``ready_in``), so the outbox paces it by scheduling rather than by meeting 429s.
    """

    CALL_SECONDS = 0.05
    PER_CHANNEL = 1.0

    def __init__(self, rate: float = 20.0) -> None:
        super().__init__()
        self.rate = rate
        self.workspace_rate = rate / WORKSPACE_HEADROOM
        self._channel_last: dict[str, float] = {}
        self._window: deque[float] = deque()
        self._next_slot: dict[str, float] = {}

    @staticmethod
    def _key(to: Recipient | ChannelTarget) -> str:
        return f"D-{to.user_id}" if isinstance(to, Recipient) else to.channel

    def ready_in(self, to: Recipient | ChannelTarget) -> float:
        with self._lock:
            return max(0.0, self._next_slot.get(self._key(to), 0.0) - time.monotonic())

    def reserve(self, to: Recipient | ChannelTarget) -> float:
        key = self._key(to)
        with self._lock:
            now = time.monotonic()
            slot = self._next_slot.get(key, 0.0)
            if slot > now:
                return slot - now
            self._next_slot[key] = now + self.PER_CHANNEL * WORKSPACE_HEADROOM
            return 0.0

    def _record(self, channel: str, message: Message) -> MessageRef:
        time.sleep(self.CALL_SECONDS)
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            last = self._channel_last.get(channel)
            if last is not None and now - last < self.PER_CHANNEL:
                self.rejected += 1
                raise AdapterError("ratelimited (channel)", retryable=True, retry_after=self.PER_CHANNEL - (now - last))
            if len(self._window) >= self.rate:
                self.rejected += 1
                raise AdapterError("ratelimited (workspace)", retryable=True, retry_after=1.0 - (now - self._window[0]))
            self._channel_last[channel] = now
            self._window.append(now)
        return super()._record(channel, message)
