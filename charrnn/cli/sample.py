"""`charrnn sample`: generate text from a checkpoint; the text alone goes to stdout, streamed."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Literal

import typer

from charrnn.cli.common import find_checkpoint, unescape
from charrnn.console import console


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
    path = find_checkpoint(checkpoint)
    prime = sys.stdin.read() if seed == "-" else unescape(seed)
    sep, stop = unescape(separator), unescape(stop) if stop else None
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
