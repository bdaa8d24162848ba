"""The set of loaded programs the engine runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import NotFound

if TYPE_CHECKING:
    from bot.journeys.loader import LoadedProgram
    from bot.journeys.model import AnyStep, Program


class Library:
    def __init__(self, programs: dict[str, LoadedProgram]) -> None:
        self._programs = programs

    @classmethod
    def from_dir(cls, content_dir: Path) -> Library:
        from bot.journeys.loader import load_library

        return cls(load_library(content_dir))

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._programs

    def ids(self) -> list[str]:
        return sorted(self._programs)

    def loaded(self, program_id: str) -> LoadedProgram:
        try:
            return self._programs[program_id]
        except KeyError:
            raise NotFound("program", program_id) from None

    def program(self, program_id: str) -> Program:
        return self.loaded(program_id).program

    def step(self, program_id: str, step_id: str) -> AnyStep:
        return self.program(program_id).step(step_id)

    def body(self, program_id: str, step_id: str) -> str:
        return self.loaded(program_id).bodies.get(step_id, "")
