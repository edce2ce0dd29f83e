"""The options of a training run, written once: `charrnn.train(**options)` takes them as keywords
and `charrnn train` as flags, both built from `TrainOptions`'s fields (type, help text, help panel,
the default the help shows, the flag's spelling, its lower bound).

Every field defaults to None (not given), so a resumed run can tell what was asked from what its
checkpoint says; the real defaults are ModelConfig's and TrainConfig's, and the choices beyond them
`training.plan`'s. It parses no command line and imports neither torch nor Typer.
"""

# ruff: noqa: RUF009  (each default is `field(default=None, metadata=...)`, made by _opt)
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from charrnn.data.split import DEFAULT_VAL_FRAC, MIN_VAL_CHARS
from charrnn.errors import InputError
from charrnn.model_config import ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.plan import DEFAULT_VOICE_DIM, FINETUNE_DEFAULTS, WARMUP_FRACTION
from charrnn.training.voiced_batches import DEFAULT_BALANCE, DEFAULT_UNTAGGED_SHARE

_T = TrainConfig()
# ModelConfig's defaults, for the help
_M = {f.name: f.default for f in fields(ModelConfig) if f.name != "vocab_size"}
MODEL, BATCH, OPTIM, STOP, OUTPUT, RUNTIME, DATA, VOICES = (
    "Model",
    "Batching",
    "Optimisation",
    "Stopping",
    "Evaluation and output",
    "Runtime",
    "Data",
    "Voices (labelled text)",
)


def _opt(
    panel: str,
    help: str,
    shown: object = None,
    *names: str,
    cli: Any = None,
    flag_default: object = None,
    **bounds: object,
) -> Any:
    """A field that is also a flag: `names` its spellings (default --the-name), `shown` the default
    the help states, `cli` the flag's type where it differs from the keyword's (the call takes
    more: seconds or text for a budget), `flag_default` the flag's value when not given."""
    meta = {"panel": panel, "help": help, "shown": shown, "names": names, "cli": cli}
    return field(default=None, metadata=meta | {"flag_default": flag_default, "bounds": bounds})


@dataclass(frozen=True)
class TrainOptions:
    """What `charrnn train` takes and `charrnn.train` takes as keywords; None: not given."""

    cell: Literal["lstm", "gru", "rnn"] | None = _opt(
        MODEL, "Recurrent cell (rnn = tanh RNN).", _M["cell"]
    )
    layers: int | None = _opt(
        MODEL,
        "Stacked recurrent layers.",
        "planned for the budget (see --dry-run); 2 without one",
        min=1,
    )
    hidden: int | None = _opt(
        MODEL, "Hidden units per layer.", "planned for the budget; 512 without one", min=1
    )
    embed: int | None = _opt(MODEL, "Character embedding size.", _M["embed"], min=1)
    dropout: float | None = _opt(
        MODEL,
        "Dropout between layers and before the head, in [0, 1).",
        "by the planned epochs, 0 under one to 0.5 over 100; 0 with no validation split",
    )
    weight_drop: float | None = _opt(
        MODEL,
        "DropConnect on the recurrent weights, in [0, 1): a fraction of each weight_hh matrix "
        "zeroed for a whole step.",
        "0.2 for lstm, 0 for gru and rnn; 0 under one planned epoch or with no validation split",
    )
    locked_dropout: bool | None = _opt(
        MODEL,
        "One dropout mask per stream for a whole step (variational) instead of one per character.",
        "on",
        "--locked-dropout/--no-locked-dropout",
    )
    batch_size: int | None = _opt(BATCH, "Parallel text streams per process.", _T.batch_size, min=1)
    seq_len: int | None = _opt(
        BATCH, "Characters per stream per step (BPTT length).", _T.seq_len, min=1
    )
    lr: float | None = _opt(OPTIM, "Peak learning rate (AdamW).", _T.lr)
    warmup: int | None = _opt(
        OPTIM,
        "Linear warmup steps.",
        f"{_T.warmup}, at most {WARMUP_FRACTION:.0%} of the planned steps",
        min=0,
    )
    min_lr: float | None = _opt(OPTIM, "Cosine floor as a fraction of --lr.", _T.min_lr)
    weight_decay: float | None = _opt(
        OPTIM, "AdamW weight decay on weight matrices.", _T.weight_decay
    )
    grad_clip: float | None = _opt(OPTIM, "Clip the gradient norm (0 = off).", _T.grad_clip)
    ema: float | None = _opt(
        OPTIM,
        "Decay of the weight average (EMA) that evaluation, best.ckpt and sampling use; 0 = off.",
        _T.ema,
    )
    shift_windows: bool | None = _opt(
        BATCH,
        "Start each epoch's windows at another offset, so BPTT boundaries move between epochs.",
        "on" if _T.shift_windows else "off",
        "--shift-windows/--no-shift-windows",
    )
    max_epochs: int | None = _opt(
        STOP, "Stop after this many passes over the data.", "50 if no stopping option", min=1
    )
    max_steps: int | None = _opt(
        STOP, "Stop at this total step count (a resumed run finishes the plan).", min=1
    )
    time_budget: float | str | None = _opt(
        STOP,
        "Stop after this long: 90s, 10m, 2h; the LR schedule anneals to it, and the model "
        "options not given are sized to it at this machine's measured speed.",
        "10m if no stopping option",
        cli=str | None,
    )
    patience: int | None = _opt(STOP, "Stop after this many evaluations without a new best.", min=1)
    eval_every: int | None = _opt(
        OUTPUT,
        "Evaluate and save last.ckpt every N steps.",
        f"{_T.eval_every}, or often enough for 5 evaluations in the planned steps",
        min=1,
    )
    eval_chars: int | None = _opt(
        OUTPUT, "Validation characters per evaluation (a fixed prefix).", _T.eval_chars, min=1
    )
    log_every: int | None = _opt(
        OUTPUT, "Write a metrics.jsonl training record every N steps.", _T.log_every, min=1
    )
    sample_every: int | None = _opt(OUTPUT, "Show a short sample on stderr every N steps.", min=1)
    out: str | Path | None = _opt(
        OUTPUT, "Run directory.", "runs/<corpus>", "--out", "-o", cli=Path | None
    )
    overwrite: bool | None = _opt(
        OUTPUT,
        "Start afresh in an --out that already holds a run.",
        None,
        "--overwrite",
        cli=bool,
        flag_default=False,
    )
    resume: str | Path | None = _opt(
        OUTPUT,
        "Continue exactly from this checkpoint (e.g. runs/x/last.ckpt).",
        cli=Path | None,
    )
    init_from: str | Path | None = _opt(
        OUTPUT,
        "Start a new run from this model's weights (a file or hf:OWNER/NAME; fine-tuning): "
        "its shape, its vocabulary plus the text's new characters, a fresh optimizer, and a "
        "lower --lr and --warmup "
        f"({FINETUNE_DEFAULTS['lr']:g}, {FINETUNE_DEFAULTS['warmup']}) unless given.",
        cli=Path | None,
    )
    allow_new_corpus: bool | None = _opt(
        OUTPUT,
        "With --resume, accept a different corpus with the same vocabulary.",
        None,
        "--allow-new-corpus",
        cli=bool,
        flag_default=False,
    )
    device: str | None = _opt(
        RUNTIME, "auto, cpu, cuda or mps.", "auto", cli=str, flag_default="auto"
    )
    no_calibrate: bool | None = _opt(
        RUNTIME,
        "Plan at the fixed reference speed instead of measuring this machine's.",
        None,
        "--no-calibrate",
        cli=bool,
        flag_default=False,
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = _opt(
        RUNTIME, "Arithmetic precision; auto = bf16 where native.", _T.precision
    )
    threads: int | None = _opt(RUNTIME, "CPU threads \\[default: torch's choice].", None, min=1)
    rng_seed: int | None = _opt(
        RUNTIME, "Random seed: same seed, same CPU run.", _T.rng_seed, min=0
    )
    val_frac: float | None = _opt(
        DATA,
        "Validation fraction when preparing raw text.",
        f"{DEFAULT_VAL_FRAC}; 0 where that would be under {MIN_VAL_CHARS:,} chars",
    )
    test_frac: float | None = _opt(
        DATA,
        "Test fraction when preparing raw text: held out after the validation text, never "
        "trained or evaluated on (`score` reads it; labelled text: each voice's own).",
        0,
    )
    errors: Literal["strict", "replace"] | None = _opt(
        DATA,
        "Invalid UTF-8 in raw text.",
        "strict",
        cli=Literal["strict", "replace"],
        flag_default="strict",
    )
    glob: str | None = _opt(DATA, "For a directory of text: only files matching this.")
    tags_from: Literal["dir", "file"] | None = _opt(
        DATA,
        "Labelled text: each subfolder of an input folder is a voice (dir), or each file's name "
        "without its extension (file).",
    )
    jsonl: bool | None = _opt(
        DATA,
        "The text is JSON Lines: one document per record.",
        None,
        "--jsonl",
        cli=bool,
        flag_default=False,
    )
    text_key: str | None = _opt(DATA, "With --jsonl: the key that holds a record's text.", "text")
    tag_key: str | None = _opt(
        DATA, "With --jsonl: the key that names a record's voice (without it: unlabelled)."
    )
    balance: Literal["proportional", "equal", "capped"] | None = _opt(
        VOICES,
        "How much of each voice an epoch reads: in proportion to its size, the same for each, "
        "or each up to --voice-cap.",
        DEFAULT_BALANCE,
    )
    voice_cap: int | None = _opt(
        VOICES,
        "With --balance capped: the most characters of one voice an epoch reads.",
        "the median voice's training size",
        min=1,
    )
    untagged_share: float | None = _opt(
        VOICES,
        "Share of training windows that drop their voice, so the model also writes and scores "
        "with none given; above 0, below 1.",
        DEFAULT_UNTAGGED_SHARE,
    )
    voice_dim: int | None = _opt(VOICES, "Voice embedding size.", DEFAULT_VOICE_DIM, min=1)
    no_condition: bool | None = _opt(
        VOICES,
        "Baseline: the same text, splits, balance and budget, with no voice given to the model.",
        None,
        "--no-condition",
        cli=bool,
        flag_default=False,
    )

    def given(self) -> dict[str, Any]:
        """The options given (not None), as the planning rules read them: a budget as text."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: v for k, v in out.items() if v is not None}
        if isinstance(out.get("time_budget"), int | float) and not isinstance(
            out["time_budget"], bool
        ):
            out["time_budget"] = f"{out['time_budget']}s"
        for name in ("out", "resume", "init_from"):
            if name in out:
                out[name] = Path(out[name])
        return out


# the options that mean something only for labelled text
VOICE_OPTIONS = ("balance", "voice_cap", "untagged_share", "voice_dim", "no_condition")


def tag_options(given: dict):
    """How the text is read (`data.voices.TagOptions`), from the options given."""
    from charrnn.data.voices import TagOptions

    return TagOptions(
        given.get("tags_from"),
        bool(given.get("jsonl")),
        given.get("text_key", "text"),
        given.get("tag_key"),
    )


def flag(name: str) -> str:
    """The flag a keyword is spelled as on the command line: batch_size → --batch-size."""
    return "--" + name.replace("_", "-")


def option_fields() -> tuple[Field, ...]:
    return fields(TrainOptions)


def check_bounds(options: TrainOptions) -> None:
    """What the command line's parser checks for the flags (a lower bound, a choice), for the
    keywords of a call: the same rules, and messages that name both spellings."""
    for f in fields(options):
        value = getattr(options, f.name)
        low = f.metadata["bounds"].get("min")
        if value is None or low is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(
                f"{flag(f.name)} ({f.name}=) must be an integer of at least {low}, got {value!r}"
            )


def unknown(keywords: dict[str, object]) -> None:
    names = {f.name for f in fields(TrainOptions)}
    wrong = sorted(set(keywords) - names)
    if wrong:
        raise TypeError(f"train() got unexpected keyword arguments: {', '.join(wrong)}")
