"""The `charrnn` command: a thin Typer shell that parses options, calls the library, renders results
on stderr (generated text alone on stdout) and maps errors to exit codes: 0 ok, 1 runtime failure,
2 bad usage or input, 130/143 interrupted after saving.

torch is imported only inside the commands that need it, so `inspect` and `--help` start instantly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from charrnn import __version__
from charrnn.cli_train import train
from charrnn.console import console, error
from charrnn.errors import CharRNNError, InputError

app = typer.Typer(
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


def prep(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Text files, directories (recursive), or - for stdin.", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Dataset directory \\[default: data/<name>].", show_default=False
        ),
    ] = None,
    val_frac: Annotated[
        float, typer.Option(help="Fraction of the text, at its end, for validation.")
    ] = 0.1,
    test_frac: Annotated[
        float, typer.Option(help="Fraction for a test split, after validation.")
    ] = 0.0,
    errors: Annotated[
        Literal["strict", "replace"],
        typer.Option(help="Invalid UTF-8: stop (strict) or substitute U+FFFD."),
    ] = "strict",
    glob: Annotated[
        str | None,
        typer.Option(help="In directories, read only files matching this pattern, e.g. '*.py'."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the dataset summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
) -> None:
    """Encode text into a dataset directory (meta.json + id arrays) that [bold]train[/] memory-maps."""
    from charrnn.prep import corpus_name
    from charrnn.prep import prep as run_prep

    target = out or Path("data") / corpus_name(inputs)
    result = run_prep(
        inputs, target, val_frac=val_frac, test_frac=test_frac, errors=errors, glob=glob
    )
    meta = result.meta
    if as_json:
        _print_json(
            {k: v for k, v in meta.items() if k not in ("vocab", "counts")} | {"path": str(target)}
        )
    if quiet:
        return
    for path in result.skipped:
        console.print(f"[yellow]skipped binary file[/] {path}", highlight=False)
    from charrnn.vocab import Vocab

    rare = Vocab.from_json(meta["vocab"], meta["counts"]).rarest(5)
    s = meta["splits"]
    console.print(
        f"wrote {target}: {meta['chars']:,} chars from {len(meta['sources'])} file(s), vocab {len(meta['vocab'])}"
        f" ({meta['dtype']})\nsplits: train {s['train']:,}, val {s['val']:,}, test {s['test']:,}\n"
        f"rarest: " + ", ".join(f"{c!r}×{n}" for c, n in rare),
        highlight=False,
        markup=False,
    )


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _find_checkpoint(given: str | None) -> Path:
    """The positional path, else $CHARRNN_CHECKPOINT, else the newest best.ckpt under ./runs."""
    if given:
        return Path(given)
    env = os.environ.get("CHARRNN_CHECKPOINT")
    if env:
        console.print(f"using $CHARRNN_CHECKPOINT: {env}", highlight=False, markup=False)
        return Path(env)
    found = [p for p in Path("runs").glob("**/best.ckpt") if p.is_file()]
    if not found:
        raise InputError(
            "no checkpoint given and none found under ./runs; train one with "
            "`charrnn train corpus.txt`, or pass a path"
        )
    newest = max(found, key=lambda p: p.stat().st_mtime)
    console.print(f"using {newest} (the newest under ./runs)", highlight=False, markup=False)
    return newest


def inspect(
    checkpoint: Annotated[
        str | None,
        typer.Argument(
            help="Checkpoint file \\[default: newest runs/**/best.ckpt].", show_default=False
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout (keys in the README).")
    ] = False,
    vocab: Annotated[
        bool, typer.Option("--vocab", help="Also list every character with its count.")
    ] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, corpus, training and loss curve (no torch needed)."""
    from charrnn import checkpoint as ckpt
    from charrnn.console import render_inspect

    header = ckpt.read_header(_find_checkpoint(checkpoint))
    info = ckpt.summarize(header, with_vocab=vocab)
    if as_json:
        _print_json(info)
    else:
        from rich.console import Console

        render_inspect(Console(highlight=False), info, show_vocab=vocab)


def sample(
    checkpoint: Annotated[
        str | None,
        typer.Argument(
            help="Checkpoint \\[default: $CHARRNN_CHECKPOINT, else newest runs/**/best.ckpt].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        str,
        typer.Option(
            "--seed", "-s", help="Prime text the sample continues; - reads it from stdin."
        ),
    ] = "",
    temp: Annotated[
        float, typer.Option("--temp", "-t", help="Temperature; lower is safer, 0 is greedy.")
    ] = 1.0,
    top_k: Annotated[
        int | None, typer.Option(help="Sample only from the k most likely characters (0 = off).")
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Sample from the smallest set holding this probability mass."),
    ] = None,
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate per sample.")
    ] = 2000,
    num_samples: Annotated[
        int, typer.Option(help="Samples to generate together as one batch.")
    ] = 1,
    separator: Annotated[
        str, typer.Option(help="Printed between samples (escapes like \\n understood).")
    ] = "\\n\\n",
    stop: Annotated[
        str | None, typer.Option(help="End a sample where this string appears (not printed).")
    ] = None,
    rng_seed: Annotated[
        int | None, typer.Option(help="Same seed, same text; drawn and shown on stderr if omitted.")
    ] = None,
    no_echo: Annotated[
        bool, typer.Option("--no-echo", help="Do not print the prime before the sample.")
    ] = False,
    unknown: Annotated[
        Literal["error", "skip"], typer.Option(help="Prime characters not in the vocabulary.")
    ] = "error",
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto.")] = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads \\[default: 1 for one sample, all for a batch].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate text from a checkpoint; the text alone goes to stdout, streamed as it is written."""
    import secrets

    from charrnn.sampler import check_options

    check_options(temp, top_k, top_p, length, num_samples)  # before any slow loading
    path = _find_checkpoint(checkpoint)
    prime = sys.stdin.read() if seed == "-" else _unescape(seed)
    sep, stop = _unescape(separator), _unescape(stop) if stop else None
    import torch

    from charrnn.runtime import resolve_device
    from charrnn.sampler import Sampler

    dev = resolve_device(device)
    if threads or (dev.type == "cpu" and num_samples == 1):
        torch.set_num_threads(threads or 1)  # one thread: tiny matrix-vector work, robust to load
    sampler = Sampler.from_checkpoint(path, device=str(dev))
    if unknown == "error":
        sampler.vocab.encode(prime)  # fail before printing anything
    if rng_seed is None:
        rng_seed = secrets.randbits(31)
        console.print(f"rng seed: {rng_seed}", highlight=False)
    options = {
        "length": length,
        "temperature": temp,
        "top_k": top_k,
        "top_p": top_p,
        "num_samples": num_samples,
        "rng_seed": rng_seed,
        "stop": stop,
        "unknown": unknown,
    }
    _write_samples(sampler, prime, sep, not no_echo, options)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\"}


def _unescape(text: str) -> str:
    r"""Let shell users write \n, \t, \r, \0 and \\ in --seed, --separator and --stop."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text, flags=re.S)


def _write_samples(sampler, prime: str, sep: str, echo: bool, options: dict) -> None:
    """Stream the first sample as it is generated; the others follow it, separated."""
    out = sys.stdout
    if out.encoding.lower().replace("-", "") != "utf8":
        out.reconfigure(encoding="utf-8")
    rest: list[list[str]] = [[] for _ in range(options["num_samples"] - 1)]
    try:
        if echo:
            out.write(prime)
        for pieces in sampler.stream_batch(prime, **options):
            if pieces[0]:
                out.write(pieces[0])
                out.flush()
            for buf, piece in zip(rest, pieces[1:], strict=True):
                buf.append(piece)
        for buf in rest:
            out.write(sep + (prime if echo else "") + "".join(buf))
        if out.isatty():
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone: stop quietly, and keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        raise typer.Exit(0) from None


for command in (prep, train, sample, inspect):
    app.command()(command)


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
