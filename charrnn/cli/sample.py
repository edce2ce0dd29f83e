"""`charrnn sample`: generate text from a checkpoint; the text alone goes to stdout, streamed (or JSON
Lines with `--json`). A thin shell: options are checked and turned into `sampler.Options`, and the
library does the work. On CPU nothing here imports torch."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from charrnn.cli.common import CheckpointArg, find_checkpoint, quiet_pipe, unescape
from charrnn.errors import InputError

CONTROLS, OUTPUT, RUN = "Controls", "Output", "Runtime"


def sample(
    checkpoint: CheckpointArg = None,
    seed: Annotated[
        str, typer.Option("--seed", "-s", help="Prime text the sample continues; - reads stdin.")
    ] = "",
    temp: Annotated[
        float | None,
        typer.Option("--temp", "-t", help="Temperature; lower is safer, 0 is greedy \\[1.0]."),
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="Keep the k most likely characters.")] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Keep the smallest set holding this probability.")
    ] = None,
    min_p: Annotated[
        float | None, typer.Option(help="Keep characters at least P × the most likely one.")
    ] = None,
    frequency_penalty: Annotated[
        float,
        typer.Option(help="Lower each character's logit by this × times it was written (-2..2)."),
    ] = 0.0,
    presence_penalty: Annotated[
        float,
        typer.Option(help="Lower the logit of every character already written by this (-2..2)."),
    ] = 0.0,
    logit_bias: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CHAR=BIAS",
            help="Add BIAS (-100..100) to a character's logit, e.g. 'e=-5' or '\\n=3' "
            "(repeatable; -100 bans it, 100 forces it).",
        ),
    ] = None,
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters per sample (a hard cap).")
    ] = 2000,
    num_samples: Annotated[
        int | None, typer.Option(help="Samples generated together; sample i uses seed S+i.")
    ] = None,
    no_repeat: Annotated[
        int | None,
        typer.Option(
            help="Never complete an N-character sequence the last 100,000 characters hold.",
            rich_help_panel=CONTROLS,
        ),
    ] = None,
    ban: Annotated[
        list[str] | None,
        typer.Option(help="Never write this string (repeatable).", rich_help_panel=CONTROLS),
    ] = None,
    until: Annotated[
        Literal["sentence", "line", "paragraph"] | None,
        typer.Option(help="End at this boundary.", rich_help_panel=CONTROLS),
    ] = None,
    min_words: Annotated[
        int | None,
        typer.Option(help="With --until: at least this many words.", rich_help_panel=CONTROLS),
    ] = None,
    max_words: Annotated[
        int | None,
        typer.Option(help="With --until: at most this many words.", rich_help_panel=CONTROLS),
    ] = None,
    beam: Annotated[
        int | None,
        typer.Option(
            help="Beam search with K beams: the most likely continuation.", rich_help_panel=CONTROLS
        ),
    ] = None,
    stop: Annotated[
        list[str] | None,
        typer.Option(
            help="End a sample where this string appears (not printed; repeatable: the first to "
            "appear ends it).",
            rich_help_panel=CONTROLS,
        ),
    ] = None,
    records: Annotated[
        int | None,
        typer.Option(
            help="Write N items, one per line, each from a line start to a newline.",
            rich_help_panel=CONTROLS,
        ),
    ] = None,
    unique: Annotated[
        bool,
        typer.Option(
            "--unique",
            help="Records: no repeats and no line of the training text.",
            rich_help_panel=CONTROLS,
        ),
    ] = False,
    novelty: Annotated[
        bool,
        typer.Option(
            "--novelty",
            help="Report the longest verbatim copy from the training "
            "text and the share of new 20-character windows (stderr, or --json).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    corpus: Annotated[
        str | None,
        typer.Option(
            help="The training text for --novelty / --unique, if the "
            "checkpoint's dataset is not found.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON Lines on stdout, one object per sample.", rich_help_panel=OUTPUT
        ),
    ] = False,
    separator: Annotated[
        str,
        typer.Option(
            help="Printed between samples (escapes like \\n understood).", rich_help_panel=OUTPUT
        ),
    ] = "\\n\\n",
    tag: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME[=WEIGHT]",
            help="Write in this voice (a voiced model); repeat with weights for a mix, e.g. "
            "--tag de=0.5 --tag en=0.5 (weights >= 0, normalised to sum to 1).",
        ),
    ] = None,
    tag_strength: Annotated[
        float,
        typer.Option(
            metavar="S",
            help="How strongly to steer toward the voice: 1 is the plain voiced model, above 1 "
            "further (two streams per sample), 0 the model without a voice.",
        ),
    ] = 1.0,
    rng_seed: Annotated[
        int | None, typer.Option(help="Same seed, same text; drawn and shown if omitted.", min=0)
    ] = None,
    no_echo: Annotated[
        bool,
        typer.Option(
            "--no-echo", help="Do not print the prime before the sample.", rich_help_panel=OUTPUT
        ),
    ] = False,
    unknown: Annotated[
        Literal["error", "skip"], typer.Option(help="Prime characters not in the vocabulary.")
    ] = "error",
    device: Annotated[
        str, typer.Option(help="cpu, cuda, mps or auto.", rich_help_panel=RUN)
    ] = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads \\[default: every core].",
            show_default=False,
            rich_help_panel=RUN,
        ),
    ] = None,
    engine: Annotated[
        Literal["numpy", "onnx"],
        typer.Option(
            help="CPU engine: numpy, or onnx (onnxruntime, int8 weights: faster; needs "
            "the onnx extra).",
            rich_help_panel=RUN,
        ),
    ] = "numpy",
    dtype: Annotated[
        Literal["int8", "f32"],
        typer.Option(help="Weights of --engine onnx.", rich_help_panel=RUN),
    ] = "int8",
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="Batches compute every sample on its own, so sample i equals --rng-seed S+i "
            "alone (about half the batched speed: 46 % at 64 streams, docs/performance.md).",
            rich_help_panel=RUN,
        ),
    ] = False,
) -> None:
    """Generate text from a checkpoint; the text alone goes to stdout, streamed as it is written."""
    from charrnn.cli import sampling as run
    from charrnn.infer.controls import Rules
    from charrnn.infer.logits import Filters
    from charrnn.infer.sampler import Options, Sampler, new_seed

    drawing = {
        "--temp": temp,
        "--top-k": top_k,
        "--top-p": top_p,
        "--min-p": min_p,
        "--frequency-penalty": frequency_penalty or None,
        "--presence-penalty": presence_penalty or None,
        "--logit-bias": logit_bias,
        "--num-samples": num_samples,
        "--records": records,
    }
    run.check_combinations(beam, drawing, num_samples, records, unique, until)
    bias = run.parse_bias(logit_bias or [])
    opts = Options(
        length,
        Filters(
            1.0 if temp is None else temp, top_k, top_p, min_p, frequency_penalty, presence_penalty
        ),
        Rules(tuple(unescape(b) for b in ban or ()), no_repeat, until, min_words, max_words),
        tuple(unescape(s) for s in stop) if stop else None,
        unknown,
        run.voice_tag(tag, tag_strength),
        tag_strength,
    )
    opts.check()  # before any slow loading
    path = find_checkpoint(checkpoint)
    prime = sys.stdin.read() if seed == "-" else unescape(seed)
    if engine == "onnx" and device != "cpu":
        raise InputError(f"--engine onnx runs on the CPU; leave out --device {device}")
    dev = run.device_of(device)
    if deterministic and dev != "cpu":
        raise InputError("--deterministic is a CPU engine mode; leave it out with --device " + dev)
    sampler = Sampler.from_checkpoint(path, dev, threads or 0, deterministic, engine, dtype)
    opts = run.with_bias(sampler, opts, bias)
    sampler.voicing(opts)  # an unknown voice, or a tag on a model without voices: refused now
    if unknown == "error":
        sampler.vocab.encode(prime)  # fail before printing anything
    index = run.corpus_index(sampler, corpus) if novelty or unique else None
    if rng_seed is None and beam is None:
        rng_seed = new_seed()
        run.show_seed(rng_seed, records or num_samples or 1)
    out = run.Out(unescape(separator), prime if not no_echo and not records else "", as_json, opts)
    with quiet_pipe():
        if beam is not None:
            from charrnn.infer.beam import beam_search

            out.finished(beam_search(sampler, prime, opts, beam), index, streamed=False)
        elif records is not None:
            out.records(sampler, prime, opts, rng_seed, records, index, unique, novelty)
        else:
            out.stream(sampler, prime, opts, rng_seed, num_samples or 1, index if novelty else None)
        if sys.stdout.isatty() and not as_json:
            sys.stdout.write("\n")
