"""The live feature's outbox purposes: how its messages are keyed, prioritised and timed.

Renderers are bound when the feature is installed (:func:`bot.live.install`); planning code uses these values
with :func:`bot.nudges.purposes.enqueue`.
"""

from __future__ import annotations

from bot.nudges.purposes import Purpose

#: A poll's channel post (``poll:<poll>``) and, when the original cannot be edited, its results
#: (``poll:<poll>:results``). Before the direct messages that point at it.
LIVE_POLL = Purpose("live_poll", priority=1, key_prefix="poll", key_parts=("poll",), windowed=False, channel=True)
#: A catch-up lesson for a learner who missed a session.
CATCHUP = Purpose("catchup", priority=6, key_parts=("session", "enrollment"))
#: The recording link for those who attended.
RECORDING = Purpose("recording", priority=6, key_parts=("session", "enrollment"))
#: Tells the lead who asked for an AI recap that its draft is ready. Answers a request: not held for the window.
RECAP_READY = Purpose("recap_ready", priority=3, key_parts=("session", "drafted"), windowed=False)
#: A lesson sent again on request (search results' "Open"). Answers a request: not held for the window.
REOPEN = Purpose("reopen", priority=1, key_parts=("progress",), unique=True, windowed=False)
