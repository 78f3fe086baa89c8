"""The few errors a user can act on, named for what to do next (after dolma's core/errors.py).

The CLI turns each into one line and exit code 2 (config, input) or 1 (IO, services); anything
else is a bug and keeps its traceback.
"""


class TokenmillError(Exception):
    """Base of the errors the CLI reports as one line."""


class ConfigError(TokenmillError):
    """Fix the config: a key is unknown, mistyped or out of range."""


class InputError(TokenmillError):
    """Fix the input: a path is missing, a glob matches nothing, a version does not exist."""


class DamagedVersionError(InputError):
    """Restore the version's files or recompute it (`--force`): a file is missing or altered, or its
    manifest is unreadable."""


class BrokenManifestError(DamagedVersionError):
    """A version whose manifest is truncated, garbage or not its own: listed as broken, never read."""

    def __init__(self, version: str, problem: str):
        super().__init__(f"version '{version}' is broken: its manifest {problem}; restore the manifest or "
                         "recompute the version with --force")
        self.version, self.problem = version, problem


class StoreIOError(TokenmillError):
    """Retry: reading or writing the store failed in a way that may pass."""


class MissingDependencyError(TokenmillError):
    """Install the optional package named in the message."""


class ServiceError(TokenmillError):
    """Retry, or point at a running service: one the run needs (the Prefect API) did not answer."""
