"""`charrnn sample`: generate text from a checkpoint; the text alone goes to stdout, streamed (or JSON
Lines with `--json`). A thin shell: options are checked and turned into `sampler.Options`, and the
library does the work. On CPU nothing here imports torch."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from charrnn import strict_json
from charrnn.cli.common import CheckpointArg, find_checkpoint, quiet_pipe, unescape, utf8_stdout
from charrnn.cli.console import console
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
    from charrnn.infer.controls import Rules
    from charrnn.infer.logits import Filters
    from charrnn.infer.sampler import Options, new_seed

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
    if beam is not None:
        clash = [k for k, v in drawing.items() if v is not None]
        if clash:
            raise InputError(
                f"--beam finds the most likely text; it does not combine with {clash[0]}"
            )
        if beam < 1:
            raise InputError(f"--beam must be >= 1, got {beam}")
    if num_samples is not None and num_samples < 1:
        raise InputError(f"--num-samples must be >= 1, got {num_samples}")
    if records is not None and records < 1:
        raise InputError(f"--records must be >= 1, got {records}")
    if unique and records is None:
        raise InputError("--unique applies to --records")
    if records is not None and (until or num_samples):
        raise InputError(
            "--records writes lines; it does not combine with --until or --num-samples"
        )
    bias = parse_bias(logit_bias or [])
    opts = Options(
        length,
        Filters(
            1.0 if temp is None else temp,
            top_k,
            top_p,
            min_p,
            frequency_penalty,
            presence_penalty,
        ),
        Rules(tuple(unescape(b) for b in ban or ()), no_repeat, until, min_words, max_words),
        tuple(unescape(s) for s in stop) if stop else None,
        unknown,
    )
    opts.check()  # before any slow loading
    path = find_checkpoint(checkpoint)
    prime = sys.stdin.read() if seed == "-" else unescape(seed)
    from charrnn.infer.sampler import Sampler

    if engine == "onnx" and device != "cpu":
        raise InputError(f"--engine onnx runs on the CPU; leave out --device {device}")
    dev = _device(device)
    if deterministic and dev != "cpu":
        raise InputError("--deterministic is a CPU engine mode; leave it out with --device " + dev)
    sampler = Sampler.from_checkpoint(path, dev, threads or 0, deterministic, engine, dtype)
    if bias:  # the characters become ids now that the vocabulary is known
        from dataclasses import replace

        from charrnn.infer.sampler import bias_ids

        opts = replace(
            opts, filters=replace(opts.filters, logit_bias=bias_ids(sampler.vocab, bias))
        )
    if unknown == "error":
        sampler.vocab.encode(prime)  # fail before printing anything
    index = _corpus_index(sampler, corpus) if novelty or unique else None
    if rng_seed is None and beam is None:
        rng_seed = new_seed()
        n = records or num_samples or 1
        shown = f"{rng_seed}" if n == 1 else f"{rng_seed} (sample i: {rng_seed} + i)"
        console.print(f"rng seed: {shown}", highlight=False)
    out = _Out(unescape(separator), prime if not no_echo and not records else "", as_json, opts)
    with quiet_pipe():
        if beam is not None:
            from charrnn.infer.beam import beam_search

            out.finished(beam_search(sampler, prime, opts, beam), index, streamed=False)
        elif records is not None:
            from charrnn.infer.records import records as make_records

            found = 0
            for rec in make_records(
                sampler, prime, opts, rng_seed, records, index if unique else None
            ):
                out.record(rec, index if novelty else None)
                found += 1
            if found < records:
                console.print(
                    f"found {found} unique records of {records} asked for", highlight=False
                )
        else:
            out.stream(sampler, prime, opts, rng_seed, num_samples or 1, index if novelty else None)
        if sys.stdout.isatty() and not as_json:
            sys.stdout.write("\n")


def parse_bias(items: list[str]) -> dict[str, float]:
    """--logit-bias CHAR=BIAS items (escapes like \\n understood; the last '=' splits, so '==2'
    biases '=') → {char: bias}; one-line errors for anything else."""
    from charrnn.infer.logits import BIAS_MAX

    out: dict[str, float] = {}
    for item in items:
        char, sep, value = item.rpartition("=")
        char = unescape(char)
        if not sep or len(char) != 1:
            raise InputError(f"--logit-bias takes CHAR=BIAS with one character, got {item!r}")
        try:
            out[char] = float(value)
        except ValueError:
            raise InputError(f"--logit-bias: {value!r} is not a number (in {item!r})") from None
        if not -BIAS_MAX <= out[char] <= BIAS_MAX:
            raise InputError(f"--logit-bias must be in [-100, 100], got {value} (in {item!r})")
    return out


def _device(name: str) -> str:
    if name == "cpu":
        return name
    from charrnn.device import resolve_device

    return resolve_device(name)


def _corpus_index(sampler, corpus: str | None):
    from charrnn.data.corpus_index import CorpusIndex

    index = CorpusIndex.for_checkpoint(sampler.header, corpus)
    if not index.matches_checkpoint:
        console.print("note: --corpus differs from the text the checkpoint was trained on")
    return index


class _Out:
    """Where samples go: text streamed to stdout (sample 0 as it is written, the rest after it), or
    one JSON object per sample."""

    def __init__(self, sep: str, echo: str, as_json: bool, opts) -> None:
        self.sep, self.echo, self.as_json, self.opts = sep, echo, as_json, opts
        utf8_stdout()
        self.out = sys.stdout
        self.count = 0

    def stream(self, sampler, prime, opts, rng_seed: int, n: int, index) -> None:
        from charrnn.infer.sampler import seed_of

        keep = self.as_json or index is not None  # else sample 0 is only streamed, never held
        run = sampler.run(prime, opts, [seed_of(rng_seed, i) for i in range(n)], keep)
        if not self.as_json:
            self.out.write(self.echo)
        for pieces in run:
            if pieces[0] and not self.as_json:
                self.out.write(pieces[0])
                self.out.flush()
        for i, s in enumerate(run.results):
            self.finished(s, index, streamed=i == 0)

    def finished(self, s, index, streamed: bool) -> None:
        """A sample is done: its JSON line, or its text if it was not streamed, and --novelty."""
        nov = index.novelty(s.text) if index is not None else None
        if self.as_json:
            obj = {
                "text": s.text,
                "rng_seed": s.rng_seed if s.rng_seed >= 0 else None,
                "finish_reason": s.finish_reason,
                "options": self.opts.to_json(),
            }
            if nov is not None:
                obj["novelty"] = nov.to_json()
            self.out.write(strict_json.dumps(strict_json.record(obj), ensure_ascii=False) + "\n")
        else:
            if not streamed:
                self.out.write((self.sep if self.count else "") + self.echo + s.text)
            if nov is not None:
                console.print(
                    f"sample {self.count}: longest copy {nov.longest_copy} chars "
                    f"({nov.longest_copy_text!r}), new 20-char windows {nov.new_share:.1%}",
                    highlight=False,
                    markup=False,
                )
        self.count += 1
        self.out.flush()

    def record(self, s, index) -> None:
        if self.as_json:
            self.finished(s, index, streamed=True)
            return
        self.out.write(s.text + "\n")
        self.out.flush()
        if index is not None:
            nov = index.novelty(s.text)
            console.print(
                f"{s.text!r}: longest copy {nov.longest_copy}, new {nov.new_share:.1%}",
                highlight=False,
                markup=False,
            )
