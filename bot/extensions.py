"""Optional features that plug into the core through its extension points (buttons, commands, renderers).

Each feature package exposes ``install(runtime)``; a package that is missing (or whose optional dependency is not
installed) is simply skipped, so the core runs without it.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

FEATURES = ("bot.live", "bot.records", "bot.reinforcement", "bot.reporting")


def install(runtime: Runtime) -> None:
    for name in FEATURES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        install_fn = getattr(module, "install", None)
        if install_fn is not None:
            install_fn(runtime)
