"""Errors that openear raises on purpose; anything else is a bug."""


class OpenearError(Exception):
    """An error with a message fit for the user: the CLI prints it on one line, without a stack trace."""


class ConfigError(OpenearError):
    """The workspace or its configuration is missing or wrong."""


class InputFormatError(OpenearError):
    """A whole input file is unreadable or not in the format asked for."""


class InvalidField(OpenearError):
    """One field of one input item is missing or wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class TransientError(OpenearError):
    """Worth retrying later (network, rate limit)."""


class TerminalError(OpenearError):
    """Retrying will not help; the source should be disabled until someone looks."""
