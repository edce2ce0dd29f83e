"""The model card of `--format hub`: front matter from `huggingface_hub`'s `ModelCardData` (no
template engine) and a body whose every figure comes from the checkpoint, the samples it writes at
fixed seeds, and what the user said about the text (`HubOptions`).

It never hand-fills a figure and never names a path of this machine. It does not write files
(`export` does) or judge the model beyond the rules in `limitations`.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from charrnn import __version__, checkpoint
from charrnn.errors import InputError
from charrnn.infer.export.hub import WEIGHTS, HubOptions

# The card's samples: (temperature, rng seed); length in characters. Regenerate one with
# `charrnn sample model.safetensors -t T --rng-seed S -n LENGTH`.
SAMPLES: tuple[tuple[float, int], ...] = ((0.7, 1), (1.0, 1))
SAMPLE_CHARS = 400
WINDOW = 20  # the novelty measure's window: a copied span this long is recitation
SMALL_TEXT = 1_000_000  # characters: below this a model of any size soon memorises its text


@dataclass(frozen=True)
class Written:
    """One sample in the card, with how much of it is copied from the training text."""

    temperature: float
    rng_seed: int
    text: str
    novelty: dict | None  # Novelty.to_json(), None when the text was not at hand

    @property
    def command(self) -> str:
        return f"charrnn sample {WEIGHTS} -t {self.temperature} --rng-seed {self.rng_seed} " + (
            f"-n {SAMPLE_CHARS}"
        )


def samples(header: checkpoint.Header, weights_file: bytes) -> list[Written]:
    """The card's samples, written by the exported file itself (so they regenerate bit for bit
    from it) with one thread, and measured against the training text where it is at hand."""
    from charrnn.data.corpus_index import CorpusIndex
    from charrnn.infer.sampler import Sampler

    try:
        index = CorpusIndex.for_checkpoint(header)
    except InputError:
        index = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS
        path.write_bytes(weights_file)
        sampler = Sampler.from_checkpoint(path, "cpu", threads=1)
        out = []
        for temperature, seed in SAMPLES:
            text = sampler.generate("", SAMPLE_CHARS, temperature, rng_seed=seed)
            nov = index.novelty(text).to_json() if index is not None else None
            out.append(Written(temperature, seed, text, nov))
    return out


def card(
    header: checkpoint.Header,
    name: str,
    options: HubOptions,
    written: list[Written],
    quality: dict | None,
) -> str:
    """README.md: front matter, then what the model is, its text, training, figures, samples and
    limitations."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    info = checkpoint.summarize(header)
    m, t, corpus = info["model"], info["training"], header.meta.get("corpus") or {}
    base = (header.meta.get("init_from") or {}).get("hub")
    results = []
    if isinstance(t["best_val_loss"], int | float) and math.isfinite(t["best_val_loss"]):
        for kind, value, label in (
            ("nats_per_char", t["best_val_loss"], "validation nats/char"),
            ("bits_per_character", t["best_val_bpc"], "validation bits/char"),
        ):
            results.append(
                EvalResult(
                    task_type="text-generation",
                    dataset_type=options.dataset or "text",
                    dataset_name=corpus.get("name") or "training text",
                    dataset_split="validation",
                    metric_type=kind,
                    metric_value=value,
                    metric_name=label,
                )
            )
    data = ModelCardData(
        model_name=name,
        library_name="charrnn",
        pipeline_tag="text-generation",
        license=options.license,
        language=list(options.language) or None,
        datasets=[options.dataset] if options.dataset else None,
        tags=["charrnn", "character-level", m["cell"]],
        base_model=base.split("@")[0] if isinstance(base, str) else None,
        eval_results=results or None,
    )
    parts = [
        f"# {name}\n",
        _what(m, header, name),
        _voices(header, name),
        _use(name, options),
        _text(corpus, header, options),
        _training(info, header),
        _evaluation(t, corpus, quality),
        _samples(written, options),
        _limitations(m, t, corpus, header, written),
        _licence(options),
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts)))


def _what(m: dict, header: checkpoint.Header, name: str) -> str:
    vocab = header.meta["vocab"]
    shown = "".join(c for c in vocab if c.isprintable() and c != " ")
    return (
        f"A character-level language model: a {m['layers']}-layer {m['cell'].upper()} of "
        f"{m['hidden']} units over a {m['embed']}-wide embedding, {m['parameters']:,} parameters, "
        f"a vocabulary of {len(vocab)} characters ({_code(shown[:120])}). It was trained with "
        f"charrnn {header.meta['versions'].get('charrnn')} and exported by charrnn {__version__}; "
        "it writes one character at a time and runs on a CPU without torch.\n"
    )


def _voices(header: checkpoint.Header, name: str) -> str:
    """A voiced model's voices: how to choose one, and each voice's size and validation loss."""
    from charrnn.infer.voices import Voices

    voices = Voices.from_header(header)
    if voices is None:
        return ""
    train = voices.chars.get("train") or []
    rows = []
    for v, voice in enumerate(voices.names):
        size = f"{train[v]:,}" if v < len(train) and isinstance(train[v], int) else "unknown"
        val = voices.val.get(voice)
        shown = f"{val:.4f}" if isinstance(val, int | float) and math.isfinite(val) else "unknown"
        rows.append(f"| `{voice}` | {size} | {shown} |")
    first = voices.names[0]
    return (
        "## Voices\n\n"
        f"It writes in {len(voices)} voices, learned from labelled text: choose one with "
        f"`--tag {first}` (`charrnn sample hf:OWNER/{name} --tag {first}`), mix them with "
        "`--tag NAME=WEIGHT` repeated, steer further with `--tag-strength 2`; "
        "`charrnn score --by-tag FILE` says which voice a text is closest to. The web page has a "
        "weight per voice and a strength.\n\n"
        "| voice | training characters | validation nats/char |\n|---|---:|---:|\n"
        + "\n".join(rows)
        + "\n"
    )


def _use(name: str, options: HubOptions) -> str:
    web = (
        "- the web page: download the repository (`hf download OWNER/"
        f"{name} --local-dir {name}`) and open `{name}/web/index.html` in a browser (no server)\n"
        if options.web
        else ""
    )
    return (
        "## How to use\n\n"
        "charrnn is installed from its checkout (`pip install -e '.[hub]'`; its distribution, "
        "`charrnn-lm`, is not yet on the package index). OWNER is the account this folder was "
        "uploaded to.\n\n"
        f"- the command line: `charrnn sample hf:OWNER/{name} -t 0.8 -n 500`\n"
        f'- Python: `charrnn.load("hf:OWNER/{name}").generate("", 500, temperature=0.8)`\n'
        f"- a server with OpenAI's completions API: `charrnn serve hf:OWNER/{name}`\n"
        + web
        + f"- ONNX: `charrnn export hf:OWNER/{name} --format onnx`\n"
    )


def _text(corpus: dict, header: checkpoint.Header, options: HubOptions) -> str:
    splits = corpus.get("splits") or {}
    source = options.text_source or "unknown (not given when exporting)"
    licence = options.text_license or "unknown (not given when exporting)"
    hub = f"; on the Hub as `{options.dataset}`" if options.dataset else ""
    return (
        "## Training text\n\n"
        f"- name: {corpus.get('name')}{hub}\n"
        f"- size: {corpus.get('chars', 0):,} characters ({splits.get('train', 0):,} for "
        f"training, {splits.get('val', 0):,} for validation)\n"
        f"- vocabulary: {len(header.meta['vocab'])} characters\n"
        f"- sha256: `{corpus.get('sha256')}`\n"
        f"- source: {source}\n"
        f"- licence: {licence}\n"
    )


def _training(info: dict, header: checkpoint.Header) -> str:
    t, plan, cfg = info["training"], info.get("plan") or {}, info["training"]["config"]
    lines = ["## Training\n"]
    if plan:
        chosen = ", ".join(f"{k} {v}" for k, v in (plan.get("chosen") or {}).items())
        given = ", ".join(plan.get("given") or []) or "nothing"
        speed = (plan.get("inputs") or {}).get("speed") or {}
        rates = speed.get("chars_per_sec")
        at = (
            f", at the speeds {speed.get('source')} here ("
            + ", ".join(f"{shape} {rate:,.0f}" for shape, rate in rates.items())
            + " chars/s)"
            if isinstance(rates, dict) and rates
            else ""
        )
        lines.append(
            f"- the plan (rules {plan.get('rules')}): given {given}; chose {chosen or 'nothing'} "
            f"for this text's size and the budget{at}"
        )
    budget = cfg.get("time_budget")
    lines += [
        f"- budget: {f'{budget:,.0f} s' if budget else 'none (a step or epoch limit)'}; "
        f"stopped by {t['stop_reason'] or 'an interruption'}",
        f"- steps: {t['steps']:,}, epochs: {t['epochs']}, best at step {t['best_step']}",
        f"- batch: {cfg.get('batch_size')} streams × {cfg.get('seq_len')} characters, "
        f"learning rate {cfg.get('lr')}",
        f"- device: {t['device']}, precision {t['precision']}, {t['world_size']} process(es)",
        f"- time: {t['elapsed_seconds']:,.0f} s",
        f"- weights: {header.meta['state'].get('sampling_weights', info['weights']['sampling'])}"
        " (what sampling uses)",
        f"- charrnn {header.meta['versions'].get('charrnn')}",
    ]
    init = header.meta.get("init_from")
    if isinstance(init, dict):
        what = init.get("hub") or f"a local checkpoint, sha256 {init.get('sha256')}"
        lines.append(f"- started from {what} (trained on {init.get('corpus')})")
    return "\n".join(lines) + "\n"


def _evaluation(t: dict, corpus: dict, quality: dict | None) -> str:
    val = (corpus.get("splits") or {}).get("val", 0)
    if t["best_val_loss"] is None:
        figure = "- no validation figure (the run had no validation split)\n"
    else:
        figure = (
            f"- validation: {t['best_val_loss']:.4f} nats/char, {t['best_val_bpc']:.4f} bits/char "
            f"on the held-out validation split ({val:,} characters, the end of the text)\n"
        )
    cost = ""
    if quality is not None and quality.get("cost") is not None:
        cost = (
            f"- the web page's {quality['dtype']} weights: {quality['nats_per_char']:.4f} "
            f"nats/char against float32's {quality['f32']:.4f} (cost {quality['cost']:+.4f}), "
            f"{quality['method']}\n"
        )
    elif quality is not None:
        cost = f"- the web page's {quality['dtype']} weights: {quality['method']}\n"
    return "## Evaluation\n\n" + figure + cost


def _samples(written: list[Written], options: HubOptions) -> str:
    if not written:
        return "## Samples\n\nNone: the export was asked not to write any (`--no-samples`).\n"
    out = [
        "## Samples\n",
        f"Each is {SAMPLE_CHARS} characters from an empty prompt, written by `{WEIGHTS}` with the "
        "command shown (it gives the same text again, character for character). Copying is "
        "measured against the training text as `charrnn sample --novelty` measures it.\n",
    ]
    for w in written:
        fence = "`" * max(3, _longest_run(w.text, "`") + 1)
        out.append(f"### temperature {w.temperature}, seed {w.rng_seed}\n")
        out.append(f"`{w.command}`\n")
        out.append(f"{fence}text\n{w.text}\n{fence}\n")
        n = w.novelty
        out.append(
            "Copied: not measured (the training text was not at hand when exporting).\n"
            if n is None
            else f"Copied: the longest span found in the training text is {n['longest_copy']} "
            f"characters; {n['new_share']:.1%} of its 20-character windows are not in the text.\n"
        )
    return "\n".join(out)


def _limitations(
    m: dict, t: dict, corpus: dict, header: checkpoint.Header, written: list[Written]
) -> str:
    chars, params = int(corpus.get("chars") or 0), int(m["parameters"])
    lines = ["## Limitations\n"]
    if chars < SMALL_TEXT or params > chars:
        lines.append(
            f"- a small text: {chars:,} characters for {params:,} parameters; a model this size "
            "learns such a text by heart, so expect long copied passages"
        )
    copied = max((w.novelty["longest_copy"] for w in written if w.novelty), default=None)
    if copied is not None and copied >= WINDOW:
        lines.append(
            f"- its samples above copy spans of up to {copied} characters from the training "
            "text verbatim: it recites as well as writes"
        )
    elif copied is not None:
        lines.append(
            f"- its samples above copy no span longer than {copied} characters: what they say "
            "is new text, however well or badly written"
        )
    if t["steps"] and t["best_step"] and t["best_step"] < t["steps"]:
        lines.append(
            f"- the validation figure stopped improving at step {t['best_step']} of {t['steps']}"
        )
    lines.append(
        f"- it knows only the {len(header.meta['vocab'])} characters of its vocabulary: any other "
        "character in a prompt is refused (or skipped with `--unknown skip`), and it never "
        "writes one"
    )
    lines.append(
        "- it imitates the surface of its text one character at a time: it has no knowledge, "
        "and what it writes is neither true nor checked"
    )
    return "\n".join(lines) + "\n"


def _licence(options: HubOptions) -> str:
    if options.license:
        return f"## Licence\n\nThe model: `{options.license}` (as given when exporting).\n"
    return "## Licence\n\nUnknown: no licence was given when exporting (`--license`).\n"


def space_readme(name: str, header: checkpoint.Header, options: HubOptions) -> str:
    """A static Space's README.md: front matter the Hub reads (`sdk: static`), a short body."""
    from huggingface_hub import SpaceCard, SpaceCardData

    m = header.meta["model"]
    data = SpaceCardData(
        title=name, sdk="static", app_file="index.html", license=options.license, tags=["charrnn"]
    )
    body = (
        f"# {name}\n\nA character-level {m['cell'].upper()} ({m['layers']}×{m['hidden']}) "
        "trained with charrnn, writing text in the browser: no server, the page runs the model "
        "itself.\n"
    )
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _code(text: str) -> str:
    """Inline code that may hold backticks: a longer fence, padded (CommonMark)."""
    fence = "`" * (_longest_run(text, "`") + 1)
    return f"{fence} {text} {fence}"


def _longest_run(text: str, char: str) -> int:
    best = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        best = max(best, run)
    return best
