"""The project's exception types. The CLI turns each into one line on stderr and an exit code."""


class TflkitError(Exception):
    """A failure the user can act on. The message is one line that says what and where."""

    exit_code = 1


class UsageError(TflkitError):
    """A bad name or argument: unknown model, dataset or recipe, a value out of range."""

    exit_code = 2


class ModelFileError(TflkitError):
    """A model file that is missing, truncated or not what its suffix claims."""


class DatasetError(TflkitError):
    """A dataset that cannot be found, read or trusted."""


class DeviceError(TflkitError):
    """adb, a phone or the benchmark binary on it failed."""


def unknown_choice(kind: str, value: str, choices) -> UsageError:
    """The one-line error for a name that is not registered, listing what is."""
    return UsageError(f"unknown {kind} {value!r}; choose from: {', '.join(sorted(choices))}")
