"""The errors a user can cause, each with the exit code `main()` returns for it."""

import sys


class BuilderError(Exception):
    """A failure the user can act on: `message` says what went wrong, `hint` what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(BuilderError):
    """Bad arguments or configuration."""

    exit_code = 2


class FetchError(BuilderError):
    """A source could not be downloaded, read or unpacked."""

    exit_code = 3


class VerifyError(FetchError):
    """A download or a source tree does not match the pin's hashes."""

    exit_code = 4


class PatchError(BuilderError):
    """The patch series is malformed or does not apply."""

    exit_code = 5


class BuildError(BuilderError):
    """CMake or the compiler failed."""

    exit_code = 6


class CommandError(BuilderError):
    """An external command failed."""

    exit_code = 7


class RegressionError(BuilderError):
    """`regress` measured a metric beyond its threshold, or did not measure a bounded one."""

    exit_code = 8


def report(exc: BuilderError) -> int:
    """Print `exc` as an `error:` line and a `hint:` line on stderr; its exit code."""
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code
