"""The `charrnn` command: a thin Typer shell that parses options, calls the library, renders results
on stderr (generated text alone on stdout) and maps errors to exit codes: 0 ok, 1 runtime failure,
2 bad usage or input, 130/143 interrupted after saving.

torch is imported only inside the commands that need it, so `inspect` and `--help` start instantly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from charrnn import __version__
from charrnn.cli.console import console, error, warning
from charrnn.errors import CharRNNError, CharRNNWarning


class _FlagsTakeNoValue:
    """Help shows a boolean flag without a value placeholder.

    Typer 0.29's rich help prints `--overwrite <bool>` (from `TyperOption.display_type_rich`), which
    reads as "pass true or false"; an empty metavar makes the flag show bare, for every command's
    options including --help and --version.
    """

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:  # Typer vendors click privately: recognise a flag by its attributes
            if getattr(p, "is_flag", False) and not getattr(p, "count", False) and not p.metavar:
                p.metavar = ""
        return params


class _Group(_FlagsTakeNoValue, TyperGroup):
    pass


class _Command(_FlagsTakeNoValue, TyperCommand):
    pass


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Stop(BaseException):
    """Raised by the default signal handler; a BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Train character-level RNN language models (LSTM/GRU/RNN) on any text, and sample from them.

    Typical use: [bold]charrnn train corpus.txt[/], then [bold]charrnn sample --seed "hello" --temp 0.8[/].
    """


from charrnn.cli.export import export  # noqa: E402  (commands register on the app above)
from charrnn.cli.inspect import inspect  # noqa: E402
from charrnn.cli.prep import prep  # noqa: E402
from charrnn.cli.sample import sample  # noqa: E402
from charrnn.cli.score import score  # noqa: E402
from charrnn.cli.serve import serve  # noqa: E402
from charrnn.cli.train import train  # noqa: E402
from charrnn.cli.viz import viz  # noqa: E402

for command in (prep, train, sample, score, inspect, viz, serve, export):
    app.command(cls=_Command)(command)


def main() -> None:
    """Entry point: run the app, turning library errors into one line and an exit code."""
    code = _run()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, C++ destructors of the (already destroyed) process group occasionally
        # abort at interpreter exit; the work is done and saved, so leave without running them.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _run() -> int:
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit, let the write fail (and be reported)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with _warnings_shown():
            code = app(prog_name="charrnn", standalone_mode=False)
    except typer.TyperException as e:  # a usage error: one line, not Typer's boxed panel
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()
        else:
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
            error(console, f"{e.format_message()}{hint}")
        return getattr(e, "exit_code", 2)
    except CharRNNError as e:
        error(console, str(e))
        return e.exit_code
    except (_Stop, typer.Abort) as e:
        return 128 + getattr(e, "signum", signal.SIGINT)
    except Exception as e:
        if os.environ.get("CHARRNN_DEBUG"):
            raise
        error(
            console,
            f"internal error: {type(e).__name__}: {e} (CHARRNN_DEBUG=1 shows the traceback)",
        )
        return 1
    return code if isinstance(code, int) else 0


@contextlib.contextmanager
def _warnings_shown() -> Iterator[None]:
    """The library's warnings (`CharRNNWarning`) as one line on the stderr console, every time;
    other warnings as Python shows them."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, CharRNNWarning):
            warning(console, str(message))
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", CharRNNWarning)
        warnings.showwarning = show
        yield
