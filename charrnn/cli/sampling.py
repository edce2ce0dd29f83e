"""What `charrnn sample` does between parsing its flags and the library: the flags' combinations
checked, the sampling options built (voices included), and where samples go (`Out`). Kept apart so
the command stays a short, readable shell.

It does not generate text (the library does) nor define flags (`sample`)."""

from __future__ import annotations

import sys

from charrnn import strict_json
from charrnn.cli.common import unescape, utf8_stdout
from charrnn.cli.console import console
from charrnn.errors import InputError


def check_combinations(
    beam: int | None,
    drawing: dict[str, object],
    num_samples: int | None,
    records: int | None,
    unique: bool,
    until: str | None,
) -> None:
    """One-line refusals of flags that do not go together, before anything slow."""
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


def voice_tag(tags: list[str] | None, strength: float):
    """--tag items as the library's tag: None, one name, or {name: weight} for a mix (weights
    checked here; names against the model once it is loaded)."""
    from charrnn.infer.voices import check_strength, parse_tags

    check_strength(strength)
    if not tags:
        if strength != 1:
            raise InputError("--tag-strength steers toward a voice; give one with --tag")
        return None
    mix = parse_tags(tags)
    if len(tags) == 1 and "=" not in tags[0]:
        return tags[0]
    if sum(mix.values()) <= 0:
        raise InputError("--tag weights are all zero; give at least one a positive weight")
    return mix


def with_bias(sampler, opts, bias: dict[str, float]):
    """The options with --logit-bias as ids, now that the vocabulary is known."""
    if not bias:
        return opts
    from dataclasses import replace

    from charrnn.infer.sampler import bias_ids

    return replace(opts, filters=replace(opts.filters, logit_bias=bias_ids(sampler.vocab, bias)))


def show_seed(rng_seed: int, n: int) -> None:
    shown = f"{rng_seed}" if n == 1 else f"{rng_seed} (sample i: {rng_seed} + i)"
    console.print(f"rng seed: {shown}", highlight=False)


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


def device_of(name: str) -> str:
    if name == "cpu":
        return name
    from charrnn.device import resolve_device

    return resolve_device(name)


def corpus_index(sampler, corpus: str | None):
    from charrnn.data.corpus_index import CorpusIndex

    index = CorpusIndex.for_checkpoint(sampler.header, corpus)
    if not index.matches_checkpoint:
        console.print("note: --corpus differs from the text the checkpoint was trained on")
    return index


class Out:
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

    def records(self, sampler, prime, opts, rng_seed, n: int, index, unique, novelty) -> None:
        """--records: n lines (unique ones with --unique), and a note when fewer were found."""
        from charrnn.infer.records import records as make_records

        found = 0
        for rec in make_records(sampler, prime, opts, rng_seed, n, index if unique else None):
            self.record(rec, index if novelty else None)
            found += 1
        if found < n:
            console.print(f"found {found} unique records of {n} asked for", highlight=False)

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
