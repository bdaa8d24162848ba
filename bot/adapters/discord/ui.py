"""discord.ui pieces: the one persistent button class, and the reflection modal.

Every Blendwise button is an :class:`ActionButton`, a :class:`discord.ui.DynamicItem` whose ``custom_id`` is the core's
``Button.action_id`` (``bw:<action>:<value>``). The class is registered once at start-up with
``client.add_dynamic_items``; discord.py then rebuilds the button from the ``custom_id`` of any message it is pressed
on. Nothing about a sent message is kept in memory, so buttons on messages sent weeks ago, or before a restart,
still work.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import discord

if TYPE_CHECKING:
    from bot.messages import ButtonStyle

CUSTOM_ID_PREFIX = "bw:"
# The action never contains ':'; the value may. discord.py matches the whole custom_id against this.
CUSTOM_ID_TEMPLATE = r"bw:(?P<action>[^:]*):(?P<value>.*)"
CUSTOM_ID_RE = re.compile(CUSTOM_ID_TEMPLATE, re.DOTALL)
MODAL_INPUT_ID = "bw:text"

STYLES: dict[str, discord.ButtonStyle] = {
    "default": discord.ButtonStyle.secondary,
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
}


class InteractionSink(Protocol):
    """What the client's ``bridge`` (the adapter) offers to UI callbacks."""

    async def on_button(self, interaction: discord.Interaction[Any], action: str, value: str) -> None: ...


def parse_custom_id(custom_id: str) -> tuple[str, str] | None:
    """``bw:<action>:<value>`` -> ``(action, value)``; ``None`` for ids that are not ours."""
    match = CUSTOM_ID_RE.fullmatch(custom_id)
    if match is None:
        return None
    return match["action"], match["value"]


class ActionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID_TEMPLATE):
    """Any ``bw:`` button, on any message, sent by this process or an earlier one."""

    def __init__(self, button: discord.ui.Button[Any], action: str, value: str) -> None:
        super().__init__(button)
        self.action = action
        self.value = value

    @classmethod
    def build(cls, label: str, custom_id: str, style: ButtonStyle, row: int) -> ActionButton:
        parsed = parse_custom_id(custom_id)
        if parsed is None:
            raise ValueError(f"custom_id {custom_id!r} is not a Blendwise button id")
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, custom_id=custom_id, style=STYLES.get(style, discord.ButtonStyle.secondary), row=row
        )
        return cls(button, *parsed)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ActionButton:
        if not isinstance(item, discord.ui.Button):
            raise TypeError(f"a bw: custom_id on a {type(item).__name__}, expected a button")
        return cls(item, match["action"], match["value"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        sink: InteractionSink = interaction.client.bridge
        await sink.on_button(interaction, self.action, self.value)


class ReflectionModal(discord.ui.Modal):
    """A one-input form. Its submission is handled statelessly from the raw interaction (see the adapter's
    ``on_interaction``), so a form opened before a restart can still be submitted after it; the modal object only
    lives long enough to be sent, hence the timeout that drops it from discord.py's view store."""

    def __init__(
        self, *, title: str, custom_id: str, label: str, placeholder: str, timeout: float = 900
    ) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=timeout)
        self.add_item(
            discord.ui.TextInput(
                label=label,
                custom_id=MODAL_INPUT_ID,
                style=discord.TextStyle.paragraph,
                placeholder=placeholder or None,
                required=True,
                max_length=4000,
            )
        )

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        """Deliberately empty: the adapter answers every ``bw:`` modal submission in ``on_interaction``."""
