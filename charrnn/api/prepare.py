"""Run preparation, the order `charrnn train` and `charrnn.train` share: the checks made before any
time is spent (resume against init-from, the checkpoints' headers, an `hf:OWNER/NAME` fetched first
and a sampling checkpoint never resumed, shape changes, the model options, the corpus), then the
text prepared (fitted to a resumed or fine-tuned model's vocabulary), the fine-tuning start, this
machine's speed (rank 0 measures, every rank receives it) and the plan, each reported as an event.

It trains nothing (that is `charrnn.api.run`'s) and shows nothing (events go to the caller).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from charrnn import checkpoint, hub
from charrnn.api.events import AllText, FineTuning, Planned, Prepared
from charrnn.api.explain import describe
from charrnn.api.options import VOICE_OPTIONS, TrainOptions, check_bounds, tag_options
from charrnn.errors import InputError, option
from charrnn.model_config import ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.finetune_voices import model_voices, source_names
from charrnn.training.plan import (
    DEFAULT_VOICE_DIM,
    MODEL_OPTIONS,
    Plan,
    carried_model,
    train_config,
    voiced_model,
)
from charrnn.training.voiced_batches import voiced_epoch

Emit = Callable[[object], None]
# the model options that change a step's speed apart from its shape
_SHAPED = ("cell", "embed", "dropout", "weight_drop", "locked_dropout")


@dataclass
class Setup:
    """A run checked and ready to prepare: what was given, the checkpoint it resumes (`header`) or
    fine-tunes from (`source`), its training config before planning, and where it runs."""

    given: dict[str, Any]
    corpus: str
    label: str
    header: checkpoint.Header | None
    source: checkpoint.Header | None
    tcfg: TrainConfig
    world: Any  # training.distributed.World
    device: Any  # torch.device


@dataclass
class Ready:
    """The prepared run: its dataset, the fine-tuning start, the plan, and the seconds planning
    spent measuring (counted against the budget)."""

    dataset: Any
    start: Any
    plan: Plan
    spent: float


def check(corpus: str | None, text: str | None, options: TrainOptions) -> Setup:
    """Everything that can be refused before the text is read or torch does any work."""
    from charrnn.training import distributed
    from charrnn.training.resume import check_shape, check_unchanged

    check_bounds(options)
    given = options.given()
    resume, init_from = given.get("resume"), given.get("init_from")
    if resume and init_from:
        raise InputError(
            f"--resume continues a run, {option('init_from')} starts a new one from a model: give one "
            "of them"
        )
    if corpus is not None and text is not None:
        raise InputError("give the text to train on as corpus or as text=, not both")
    header = checkpoint.read_header(hub.local(str(resume))) if resume else None  # or hf:NAME
    if header is not None and not header.meta["state"]:
        raise InputError(f"{resume}: holds no training state to resume")
    if header is not None and not checkpoint.summarize(header)["weights"]["resumable"]:
        raise InputError(
            f"{resume}: a sampling checkpoint (no optimizer state; export --format hub writes "
            f"them) cannot be resumed; start a new run from it with {option('init_from')} {resume}"
        )
    source = checkpoint.read_header(hub.local(str(init_from))) if init_from else None
    world = distributed.from_env()
    if header is not None:
        check_unchanged(given, header.meta, world.size)
    if source is not None:
        check_shape(given, source.meta, f"with {option('init_from')}")
    tcfg = train_config(given, header and header.meta, finetune=source is not None)
    # check the model options before spending time on the corpus
    tag_options(given)  # refused now, before the text is read
    if header is None and source is None:  # (the voices come with the text)
        defaults = {f.name: f.default for f in fields(ModelConfig) if f.name in MODEL_OPTIONS}
        ModelConfig(vocab_size=1, **{k: given.get(k, d) for k, d in defaults.items()})
    else:
        ModelConfig.from_dict(carried_model((header or source).meta, given))
    label = None
    if text is not None:
        corpus, label = _text_file(text), "text"
    corpus = str(corpus) if corpus else (header.meta["corpus"].get("path") if header else None)
    if not corpus:
        raise InputError("missing CORPUS: the text file or dataset to train on")
    if corpus != "-" and not Path(corpus).exists():
        raise InputError(f"{corpus}: no such file or directory")
    from charrnn.training.rundir import label as corpus_label

    dev = distributed.device(world, given.get("device", "auto"))
    distributed.init(world, dev)  # ranks plan from rank 0's speed and train where rank 0 chose
    return Setup(given, corpus, label or corpus_label(corpus), header, source, tcfg, world, dev)


def _text_file(text: str) -> str:
    """A string to train on, kept as a file in the cache under its hash (a resumed run finds it)."""
    from charrnn.data.dataset import cache_dir

    if not isinstance(text, str) or not text:
        raise InputError("text= must be a non-empty string")
    data = text.encode("utf-8", "surrogatepass")
    path = cache_dir() / "texts" / f"text-{hashlib.sha256(data).hexdigest()[:16]}.txt"
    if not path.is_file():
        from charrnn import atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp:
            tmp.write_bytes(data)
    return str(path)


def prepare(setup: Setup, emit: Emit, plan: Plan | None = None) -> Ready:
    """The dataset, the fine-tuning start and the plan (`plan` as given, else made now); every
    line the user sees before training is an event."""
    import torch

    from charrnn.data.dataset import is_dataset, resolve_dataset
    from charrnn.training import distributed
    from charrnn.training.finetune import reencode
    from charrnn.training.plan import plan as make_plan
    from charrnn.training.resume import resumed_val_frac

    s, given, world = setup, setup.given, setup.world
    say = emit if world.main else (lambda e: None)
    if given.get("threads"):
        torch.set_num_threads(given["threads"])
    prep_opts = {
        "val_frac": given.get("val_frac"),
        "test_frac": given.get("test_frac", 0.0),
        "errors": given.get("errors", "strict"),
        "glob": given.get("glob"),
        "tags": tag_options(given),
    }
    if s.header and "val_frac" not in given:
        prep_opts["val_frac"] = resumed_val_frac(s.header.meta)
    if world.main:  # prepare once; the other ranks find it in the cache
        dataset, fresh = resolve_dataset(s.corpus, **prep_opts)
        if fresh:
            say(Prepared(s.corpus, str(dataset.path)))
    distributed.barrier(world)
    if not world.main:
        dataset, _ = resolve_dataset(s.corpus, **prep_opts)
    if "val_frac" not in given and not is_dataset(Path(s.corpus)):
        from charrnn.data.split import auto_val_frac

        chars = int(dataset.meta["chars"])
        if not auto_val_frac(chars):
            say(AllText(s.corpus, chars))
    voices = _check_voices(s, dataset)
    start = None
    if s.source:
        names = model_voices(s.source.meta, voices, not given.get("no_condition"))
        dim = int(given.get("voice_dim", DEFAULT_VOICE_DIM))
        start = _fine_tune(s.source, dataset, s.tcfg, say, names, dim)
        dataset = _through(reencode(dataset, start.vocab), dataset.vocab, names, s.source.meta)
    elif s.header:
        text_vocab = dataset.vocab
        dataset = as_checkpoint_vocab(dataset, s.header.meta["vocab"])
        dataset = _through(dataset, text_vocab, source_names(s.header.meta), s.header.meta)
    voices = dataset.voices
    train_chars = len(dataset.split("train"))
    if voices is not None:  # an epoch reads what the balance makes of the voices
        train_chars = voiced_epoch(s.tcfg, voices, None, train_chars)[1]
    val_chars = len(dataset.split("val"))
    speeds = None
    if plan is None:
        if s.header is None and s.source is None and s.tcfg.time_budget:
            conditioned = voices is not None and not given.get("no_condition")
            voiced = voiced_model(given, len(voices)) if conditioned else {}
            speeds = _measured(s, dataset.vocab.size, train_chars, val_chars, voiced)
        plan = make_plan(
            given,
            vocab_size=dataset.vocab.size,
            train_chars=train_chars,
            val_chars=val_chars,
            world_size=world.size,
            resume_meta=s.header and s.header.meta,
            source_meta=s.source and s.source.meta,
            speeds=speeds,
            voice_sizes=tuple(voices.chars("train")) if voices is not None else (),
        )
    lines = list(plan.notes)
    if plan.record and s.header is None:
        lines += describe(plan.record, plan.model)
    say(Planned(plan, tuple(lines)))
    return Ready(dataset, start, plan, speeds.seconds if speeds else 0.0)


def _check_voices(s: Setup, dataset):
    """The text's voices (None: unlabelled), refusing what cannot go with them: a voice option on
    unlabelled text, a voiced source's model on unlabelled text or unconditioned, and a resumed
    model conditioned on other voices (a fine-tuned model's may be more than its text's)."""
    voices, given = dataset.voices, s.given
    source = source_names(s.source.meta) if s.source else []
    if voices is None:
        asked = [k for k in VOICE_OPTIONS if given.get(k) not in (None, False)]
        if asked:
            raise InputError(
                f"{option(asked[0])} applies to labelled text (--tags-from dir|file, or --jsonl "
                "with --tag-key)"
            )
        if source:
            raise InputError(
                f"{s.source.path}: its model has voices ({', '.join(source)}); label the text "
                "(--tags-from dir|file, or --jsonl with --tag-key) to say whose it is"
            )
        return None
    if source and given.get("no_condition"):
        raise InputError(
            f"--no-condition: {s.source.path}'s model is conditioned on its voices; leave "
            "--no-condition out"
        )
    had = source_names(s.header.meta) if s.header else []
    if had and not set(voices.names) <= set(had):
        raise InputError(
            f"{s.header.path}: its model's voices are {', '.join(had)}; this text's are "
            f"{', '.join(voices.names)}"
        )
    return voices


def _through(dataset, text_vocab, names: list[str], meta: dict):
    """A labelled dataset seen through the model's voices `names` (those of the checkpoint `meta`
    and the text's, finetune_voices), counts on the run's vocabulary; else the dataset as it is."""
    from charrnn.training.finetune import revoice
    from charrnn.training.finetune_voices import merge_table

    text = dataset.voices
    if text is None or not names:
        return dataset
    table = merge_table(text, names, text_vocab, dataset.vocab, meta.get("voices"), meta["vocab"])
    return revoice(dataset, table)


def _measured(s: Setup, vocab_size: int, train_chars: int, val_chars: int, voiced: dict):
    """This machine's speed for the run's cell, vocabulary, batch and regularisers (rank 0
    measures, every rank gets the same figures, so every rank plans alike); None (the reference)
    with no_calibrate. A text with no validation split trains without dropout or weight-drop (the
    all-text rule), so it is measured so: its finished run then refreshes the reading its next
    plan reads. `voiced`: a conditioned model's voices and voice_dim (its own reading)."""
    from charrnn.training import calibrate, distributed
    from charrnn.training.batches import fit_batch
    from charrnn.training.plan import ALL_TEXT_MODEL, has_validation
    from charrnn.training.precision import resolve_precision

    given, tcfg = s.given, s.tcfg
    options = {k: given[k] for k in _SHAPED if k in given}
    if not has_validation(val_chars):
        options = ALL_TEXT_MODEL | options
    model = ModelConfig(vocab_size=vocab_size, **options, **voiced)
    if given.get("no_calibrate"):
        return None  # plan() takes the reference speed
    speeds = None
    if s.world.main:
        batch, seq = fit_batch(train_chars, tcfg.batch_size, tcfg.seq_len, s.world.size)
        precision = resolve_precision(tcfg.precision, s.device, model.cell)
        speeds = calibrate.speeds(
            model, batch, seq, s.device, precision, s.world.size, tcfg.time_budget
        )
    return distributed.broadcast(s.world, speeds)


def _fine_tune(
    source: checkpoint.Header, dataset, tcfg: TrainConfig, say: Emit, voices: list[str], dim: int
):
    """The model a fine-tuning run starts from, fitted to the text's vocabulary and to the model's
    voices `voices` (empty: none; `dim` the width a source without voices gets); says what it did."""
    from charrnn.training.finetune import start_from

    start = start_from(source, dataset.vocab, tcfg.rng_seed, voices, dim)
    m = source.meta["model"]
    where = hub.origin(source.path)  # a Hub model is named as the user named it, with its commit
    say(
        FineTuning(
            str(source.path) if where is None else f"hf:{where['repo']}@{where['commit'][:12]}",
            m["cell"],
            m["layers"],
            m["hidden"],
            start.record["step"],
            start.record["weights"],
            tcfg.lr,
            tcfg.warmup,
            tuple(start.new_chars),
            start.vocab.size,
            tuple(start.new_voices),
            len(voices),
        )
    )
    return start


def as_checkpoint_vocab(dataset, chars: list[str]):
    """A resumed fine-tuning run's text, read through the checkpoint's wider vocabulary (any other
    mismatch is left for the corpus check to report)."""
    from charrnn.training.finetune import reencode
    from charrnn.vocab import Vocab

    if dataset.vocab.to_json() == chars or not set(dataset.vocab.chars) <= set(chars):
        return dataset
    return reencode(dataset, Vocab.from_json(chars))
