"""Transitional re-export: the adapter contract now lives in the core, in :mod:`bot.ports`.

Import from :mod:`bot.ports`; nothing in this repository uses this module any more, and it will be removed.
"""

from __future__ import annotations

from bot.ports import Adapter, ChannelTarget, InboundHandler, LiveSession, Profile, Recipient

__all__ = ["Adapter", "ChannelTarget", "InboundHandler", "LiveSession", "Profile", "Recipient"]
