"""The `charrnn train` command: its flags are `TrainOptions`'s fields (plus --json, --quiet and
--dry-run), it calls `charrnn.train` (or `charrnn.plan` for --dry-run) once and renders the
events on stderr with the terminal handler.

Preparing the run is the library's; what stays here is the command line's own: SIGTERM and the
second signal (`signals.Signals`), the "resume with" line and the exit codes 130/143, and stdout.
"""

from __future__ import annotations

import inspect
import signal
import sys
from dataclasses import fields
from typing import Annotated

import typer

from charrnn import strict_json
from charrnn.api.options import OUTPUT, TrainOptions
from charrnn.cli.console import Terminal, console
from charrnn.errors import Interrupted

# the flags that are the command line's alone, after the option named here (help's order)
_CLI_ONLY_AFTER = "allow_new_corpus"


def _opt(panel: str, help: str, shown: object, names: tuple[str, ...], bounds: dict):
    text = f" \\[default: {shown}]" if shown is not None else ""  # escaped for Rich markup
    return typer.Option(
        *names, help=help + text, rich_help_panel=panel, show_default=False, **bounds
    )


_CORPUS = inspect.Parameter(
    "corpus",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    default=None,
    annotation=Annotated[
        str | None,
        typer.Argument(
            help="Text file, directory of text, or dataset from prep (optional with --resume).",
            show_default=False,
        ),
    ],
)
_CLI_ONLY = [
    ("as_json", "Print a JSON summary of the finished run on stdout.", "--json"),
    ("quiet", "Only errors on stderr.", "--quiet", "-q"),
    ("dry_run", "Print the plan (with --json: as JSON) and stop before training.", "--dry-run"),
]


def _parameters() -> list[inspect.Parameter]:
    """The command's parameters: TrainOptions's fields as flags, with --json, --quiet and
    --dry-run among the output options."""
    params = [_CORPUS]
    for f in fields(TrainOptions):
        m = f.metadata
        kind = m["cli"] if m["cli"] is not None else f.type
        option = _opt(m["panel"], m["help"], m["shown"], m["names"], m["bounds"])
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=m["flag_default"],
                annotation=Annotated[kind, option],
            )
        )
        if f.name == _CLI_ONLY_AFTER:
            params += [
                inspect.Parameter(
                    name,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=False,
                    annotation=Annotated[bool, _opt(OUTPUT, help, None, names, {})],
                )
                for name, help, *names in _CLI_ONLY
            ]
    return params


def train(**kw: object) -> None:
    """Train a model; checkpoints and metrics.jsonl go to the run directory."""
    import charrnn
    from charrnn.api.run import main_process
    from charrnn.cli.signals import Signals

    corpus = kw.pop("corpus")
    as_json, quiet, dry_run = (bool(kw.pop(k)) for k in ("as_json", "quiet", "dry_run"))
    main = main_process()
    view = Terminal(console, quiet=quiet or not main)
    if dry_run:
        plan = charrnn.plan(corpus, on_event=view, **kw)
        if as_json and main:
            summary = {"model": plan.model.to_dict(), "train": plan.train.to_dict()}
            sys.stdout.write(
                strict_json.dumps(strict_json.record(summary | {"plan": plan.record})) + "\n"
            )
        return
    stopper = Signals()

    def on_event(event: object) -> None:
        if isinstance(event, charrnn.Started):  # Ctrl-C from here on stops after a step, saved
            stopper.install()
        view(event)

    try:
        with view:
            run = charrnn.train(corpus, on_event=on_event, should_stop=stopper.reason, **kw)
    finally:
        stopper.uninstall()
    if as_json and main:
        sys.stdout.write(strict_json.dumps(strict_json.record(run.summary())) + "\n")
    if run.reason == "interrupted":
        hint = f"charrnn train --resume {run.last_path} {run.corpus}"
        raise Interrupted(
            f"interrupted: saved {run.last_path} at step {run.step}; resume with: {hint}",
            128 + (stopper.signum or signal.SIGINT),
        )


train.__signature__ = inspect.Signature(_parameters(), return_annotation=None)  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in _parameters()} | {"return": None}
