"""The Blendwise error tree.

Expected failures raise a :class:`BlendwiseError` subclass whose message a person can act on. The CLI prints it
as one line and exits non-zero; an adapter replies ephemerally with it. Anything else is a bug: it is logged with
``logger.exception`` and the user gets a generic, polite reply.
"""

from __future__ import annotations


class BlendwiseError(Exception):
    """Base class of every expected failure. ``str(err)`` is shown to a person as it is."""

    exit_code = 1


class ConfigError(BlendwiseError):
    """app.yaml or the environment holds a bad value. The message names the key."""

    exit_code = 2

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config error: {key}: {problem}")


class ContentError(BlendwiseError):
    """A program file is invalid. ``problems`` holds every ``path:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} content problems:\n" + "\n".join(problems))


class NotFound(BlendwiseError):
    """A lookup failed. The message names the id that could not be found."""

    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"no {what} with id {ident!r}")


class PermissionDenied(BlendwiseError):
    """The caller's role does not allow the action."""


class InvalidInput(BlendwiseError):
    """A person typed something we cannot use (a bad duration, a missing argument...)."""


class AdapterError(BlendwiseError):
    """A platform call failed.

    Args:
        message: what went wrong, without secrets.
        retryable: whether the outbox should try again.
        retry_after: seconds the platform asked us to wait (HTTP 429 Retry-After), if any.
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)


class DuplicateRegistration(BlendwiseError):
    """Something registered a name that is already taken (a purpose, a button, a command...).

    Raised at start-up rather than letting the second registration silently replace the first: the message names
    both registrants so the clash can be fixed where it happens.
    """

    exit_code = 2

    def __init__(self, what: str, name: str, first: str, second: str) -> None:
        self.what = what
        self.name = name
        self.first = first
        self.second = second
        super().__init__(f"{what} '{name}' is registered twice: by {first} and by {second}")
