"""The platform registry: each adapter package declares its settings, variables and factory here.

A platform is one folder under ``bot/adapters/``. Its ``settings`` module (which must not import the platform's SDK,
so app.yaml validates where the extra is not installed) registers a :class:`PlatformSpec`: the pydantic model of its
app.yaml section, the conventional environment variables that fill that section, and a factory that imports the SDK
lazily and builds the adapter. The core config validates ``platforms:`` and each platform's section against what is
registered here, so adding a platform touches no core module. The composition root (``bot.app``) lists the known
platform packages once, in ``PLATFORM_PACKAGES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bot.errors import DuplicateRegistration

if TYPE_CHECKING:
    from sqlalchemy import Engine as DbEngine

    from bot.clock import Clock
    from bot.config import Settings
    from bot.messages import Message
    from bot.ports import Adapter


@dataclass(frozen=True)
class PlatformParts:
    """What a factory may use besides its own section: the whole settings, the database and the clock."""

    settings: Settings
    db: DbEngine
    clock: Clock | None = None


@dataclass(frozen=True)
class PlatformSpec:
    """One platform as its adapter package declares it.

    Attributes:
        name: the value of ``platforms:`` and the name of the app.yaml section (``slack``).
        settings_model: the pydantic model of that section; every field needs a default, so an unconfigured
            platform still has a section.
        factory: ``factory(section, parts) -> Adapter``; imports the SDK, so only called for configured platforms.
        env: section field -> conventional environment variable (``{"bot_token": "SLACK_BOT_TOKEN"}``).
        owner: the module that registered it, named when another module registers the same name.
        cli: the import path of a module whose ``setup_cli(cli)`` adds the platform's command-line commands
            (``blendwise <platform> ...``), as a feature's does; it must import no SDK at module level.
        preview: ``preview(message) -> JSON text``: the platform's payload for a core message, for
            ``content preview``; imports the platform's renderer lazily, so an ImportError means the extra is missing.
        extra: the pip extra that installs the platform's SDK (``blendwise[slack]``), named when it is missing.
    """

    name: str
    settings_model: type[BaseModel]
    factory: Callable[[Any, PlatformParts], Adapter]
    env: Mapping[str, str] = field(default_factory=dict)
    owner: str = ""
    cli: str | None = None
    preview: Callable[[Message], str] | None = None
    extra: str = ""


class PlatformRegistry:
    """Registered platforms by name; a second registration of a name is refused naming both registrants."""

    def __init__(self) -> None:
        self._specs: dict[str, PlatformSpec] = {}

    def register(self, spec: PlatformSpec) -> PlatformSpec:
        """Add ``spec``.

        Raises:
            DuplicateRegistration: another module already registered ``spec.name``.
        """
        first = self._specs.get(spec.name)
        if first is not None and first is not spec:
            raise DuplicateRegistration("platform", spec.name, first.owner or "?", spec.owner or "?")
        self._specs[spec.name] = spec
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[PlatformSpec]:
        return iter(self._specs.values())

    def __getitem__(self, name: str) -> PlatformSpec:
        return self._specs[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)


#: The process-wide registry the platform packages' ``settings`` modules register into.
PLATFORMS = PlatformRegistry()
_loaded = False


def registered() -> PlatformRegistry:
    """:data:`PLATFORMS`, after importing the platform packages the composition root lists (once).

    The import is lazy because ``bot.app`` imports the config, which asks for the registry.
    """
    global _loaded
    if not _loaded:
        from bot.app import PLATFORM_PACKAGES

        for module in PLATFORM_PACKAGES:
            importlib.import_module(module)
        _loaded = True
    return PLATFORMS
