"""docs/extending.md's two skeletons are real: the feature registers on a real runtime and answers through the
console adapter; the adapter is a complete :class:`bot.ports.Adapter` that the real sender delivers through."""

from __future__ import annotations

import re
import types
from typing import Any

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.config import Settings
from bot.messages import Message
from bot.ports import Adapter, Recipient
from tests.conftest import ROOT

DOC = ROOT / "docs" / "extending.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def load(name: str, code: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{DOC}:{name}", "exec"), module.__dict__)
    return module


def test_the_feature_skeleton_registers_and_answers(rt: Runtime) -> None:
    feature, _ = snippets()
    module = load("docs_feature", feature)
    assert rt.registry is not None and rt.registry.setup(module) is True
    assert rt.dispatcher.commands.owners["streak"] == "docs_feature"
    console: Any = rt.adapters["console"]
    reply = console.command("U1", "streak")
    assert "in a row" in (reply.ephemeral.text if reply.ephemeral else "")
    assert "streak" in [s.name for s in rt.dispatcher.subcommands()]


def test_the_adapter_skeleton_is_a_complete_adapter(settings: Settings, clock: VirtualClock) -> None:
    _, platform = snippets()
    module = load("docs_adapter", platform)
    adapter: Adapter = module.EchoAdapter()
    runtime = build(settings, clock=clock, adapters={"echo": adapter})
    adapter.start(runtime.dispatcher)
    ref = adapter.send_direct(Recipient("echo", "echo", "U1"), Message(text="Hello"))
    adapter.update(ref, Message(text="Hello again"))
    assert adapter.lines == ["@U1: Hello", "(edited 1) Hello again"]
    # The defaults every adapter inherits: nothing to reconcile, no pacing, its own name as the workspace.
    assert adapter.find_delivery(Recipient("echo", "echo", "U1"), 1) is None
    assert adapter.reserve(Recipient("echo", "echo", "U1")) == 0.0
    assert adapter.default_workspace() == "echo"
