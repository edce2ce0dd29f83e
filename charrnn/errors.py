"""The exceptions the library raises, and the warning it gives, for the user to read.

Every message is one line, written for the person at the terminal. The CLI maps them to exit codes
(1 for runtime failures, 2 for bad usage or bad input) and shows warnings on stderr; the library
itself never exits or prints.
"""

# The distribution's name on the package index: `charrnn` there is an unrelated project, so the
# command and the import keep `charrnn` while the distribution is `charrnn-lm` (docs/sharing.md
# says how the name was checked). It is not published yet, so installs come from a checkout.
DISTRIBUTION = "charrnn-lm"


def install_hint(extra: str) -> str:
    """How to get an optional extra, for a one-line refusal: from the checkout until the
    distribution is on the package index (then `pip install 'charrnn-lm[EXTRA]'`)."""
    return f"pip install -e '.[{extra}]' in the charrnn checkout"


def option(name: str) -> str:
    """How a message names a training option: its flag and, where the Python keyword is spelled
    otherwise, the keyword too (`--batch-size (batch_size=)`), so one text serves `charrnn train`
    and `charrnn.train(...)` alike."""
    flag = "--" + name.replace("_", "-")
    return f"{flag} ({name}=)" if "_" in name else flag


class CharRNNError(Exception):
    """A failure during a run that is not the user's input's fault (disk full, divergence)."""

    exit_code = 1


class InputError(CharRNNError):
    """Bad usage or bad input data: a missing file, an invalid option, an unreadable checkpoint."""

    exit_code = 2


class Interrupted(CharRNNError):
    """Training stopped on a signal after saving; the exit code follows the shell's 128 + signum."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CharRNNWarning(UserWarning):
    """Something the library recovered from that the user should hear about (a damaged cache
    entry rebuilt): raised through `warnings.warn`, so Python callers may filter it."""
