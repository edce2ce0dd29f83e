"""Everything charrnn shows on the terminal except generated text: the stderr console, training
progress (a Rich bar on a TTY, plain periodic lines otherwise), error lines, and the `inspect` view.

Generated text never passes through here (Rich would wrap it and render markup); the CLI writes it to
stdout itself. Colour follows Rich's own rules, so NO_COLOR and non-TTY output stay plain.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from charrnn.train.events import Evaluated, Finished, Logged, Note, Snapshot, Started

_BLOCKS = "▁▂▃▄▅▆▇█"


console = Console(stderr=True, highlight=False, soft_wrap=True)


def error(console: Console, message: str) -> None:
    console.print(f"[bold red]charrnn: error:[/] {escape(message)}", soft_wrap=True)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def sparkline(values: list[float], width: int = 60) -> str:
    """A loss curve in block characters, averaged down to `width` columns."""
    if not values:
        return ""
    n = min(width, len(values))
    cols = [values[i * len(values) // n : (i + 1) * len(values) // n] for i in range(n)]
    avg = [sum(c) / len(c) for c in cols]
    lo, hi = min(avg), max(avg)
    span = (hi - lo) or 1.0
    return "".join(_BLOCKS[min(7, int((v - lo) / span * 8))] for v in avg)


class TrainView:
    """Renders training events on stderr; use as a context manager around the run."""

    PLAIN_INTERVAL = 10.0  # seconds between plain progress lines when stderr is not a TTY

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console, self.quiet = console, quiet
        self.live = console.is_terminal and not quiet
        self.progress: Any = None
        self.task: Any = None
        self.last_val: Evaluated | None = None
        self.last_plain = 0.0
        self.total: int | None = None

    def __enter__(self) -> TrainView:
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                # most important first: a narrow terminal cuts the line from the right
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.fields[stats]}"),
                console=self.console,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=None, stats="", eta="?")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def __call__(self, event: object) -> None:
        if isinstance(event, Started):
            self._started(event)
        elif isinstance(event, Note):
            self.say(f"[yellow]note:[/] {escape(event.message)}")
        elif isinstance(event, Logged):
            self._logged(event)
        elif isinstance(event, Evaluated):
            self.last_val = event
            mark = " [green](best)[/]" if event.best else ""
            what = "val" if event.source == "val" else "train (no val split)"
            raw = (
                f" [dim](average {event.ema_val_loss:.4f}, raw {event.raw_val_loss:.4f})[/]"
                if event.ema_val_loss is not None
                else ""
            )
            self.say(
                f"step {event.step}: {what} loss {event.val_loss:.4f} nats/char, "
                f"{event.val_bpc:.4f} bpc{mark}{raw}"
            )
        elif isinstance(event, Snapshot):
            text = preview(event)
            self.say(f"[dim]--- sample at step {event.step} ---[/]\n{escape(text)}\n[dim]---[/]")
        elif isinstance(event, Finished):
            self._finished(event)

    def _started(self, e: Started) -> None:
        self.total = e.total_steps
        resumed = f", resuming at step {e.resumed_step}" if e.resumed_step else ""
        procs = f" × {e.world_size} processes" if e.world_size > 1 else ""
        self.say(
            f"{escape(e.out_dir)}: {e.parameters:,} parameters on {e.device}{procs} ({e.precision}){resumed}\n"
            f"data: {e.train_chars:,} train chars, {e.val_chars:,} val chars (evaluating "
            f"{e.eval_chars:,}), vocab {e.vocab_size}; unigram entropy {e.unigram_entropy:.3f} "
            f"nats/char ({e.unigram_entropy / 0.6931471805599453:.3f} bpc)\n"
            f"batch {e.batch_size} × seq-len {e.seq_len}, {e.steps_per_epoch:,} steps/epoch"
            + (f", {e.total_steps:,} steps planned" if e.total_steps else "")
            + (f", time budget {duration(e.time_budget)}" if e.time_budget else "")
        )

    def _stats(self, e: Logged) -> str:
        val = (
            f" | val {self.last_val.val_loss:.3f} ({self.last_val.val_bpc:.3f} bpc)"
            if self.last_val
            else ""
        )
        return f"loss {e.train_loss:.3f}{val} | {e.chars_per_sec:,.0f} chars/s | lr {e.lr:.2e}"

    def _logged(self, e: Logged) -> None:
        eta = None
        if e.progress:
            eta = e.elapsed * (1 - min(e.progress, 1)) / e.progress
        step = f"step {e.step:,}" + (f"/{self.total:,}" if self.total else "")
        if self.progress is not None:
            self.progress.update(
                self.task,
                description=f"epoch {e.epoch} {step}",
                total=1.0 if e.progress is not None else None,
                completed=min(e.progress or 0.0, 1.0),
                stats=self._stats(e),
                eta=duration(eta),
            )
        elif not self.quiet and time.monotonic() - self.last_plain >= self.PLAIN_INTERVAL:
            self.last_plain = time.monotonic()
            self.console.print(
                f"epoch {e.epoch} {step} | {self._stats(e)} | "
                f"{duration(e.elapsed)} elapsed, ETA {duration(eta)}",
                highlight=False,
            )

    def _finished(self, e: Finished) -> None:
        # without a validation split, evaluations (and best.ckpt) follow the training loss
        what = "train" if self.last_val is not None and self.last_val.source != "val" else "val"
        best = (
            (
                f"; best {what} {e.best_val_loss:.4f} nats/char "
                f"({e.best_val_loss / 0.6931471805599453:.4f} bpc) at step {e.best_step}"
            )
            if e.best_val_loss is not None
            else ""
        )
        self.say(
            f"stopped ({e.reason}) at step {e.step:,}, epoch {e.epoch}, after "
            f"{duration(e.elapsed)}{best}\ncheckpoints: {escape(e.best_path or '-')} (best), "
            f"{escape(e.last_path)} (last)"
        )


def limit_is_own(limit: dict, layers: int, hidden: int) -> bool:
    """Whether a plan's `limit` names the model's own shape: no shape met the rules, so the plan
    took the smallest (otherwise it names the next shape up)."""
    return limit["shape"] == f"{layers}x{hidden}"


def _plan_line(plan: dict, model: dict) -> str:
    """How the run was sized: the rules' version, what they chose, and the speed they used."""
    chosen = " ".join(f"{k}={v}" for k, v in plan.get("chosen", {}).items())
    est, speed = plan.get("estimate", {}), (plan.get("inputs") or {}).get("speed")
    at = f" for ~{est['steps']:,} steps" if est.get("steps") else ""
    if speed:
        readings = ", ".join(f"{k} {v:,.0f}" for k, v in speed["chars_per_sec"].items())
        at += f" ({speed['source']} chars/s: {readings})"
    if limit := plan.get("limit"):
        lacks = {
            "steps": "too few steps",
            "passes": "too few passes",
            "weights": "too many weights",
        }
        why = f"{limit['shape']}: {lacks.get(limit['lacks'], limit['lacks'])}"
        own = limit_is_own(limit, model["layers"], model["hidden"])
        at += f"; no shape meets the rules ({why})" if own else f"; not {why}"
    return f"rules v{plan.get('rules')}: {chosen}{at}"


def render_inspect(console: Console, info: dict, show_vocab: bool = False) -> None:
    """The human view of `inspect`: what the file is, the model, data, training and loss curve."""
    m, v, c, t = info["model"], info["vocab"], info["corpus"], info["training"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()

    def section(title: str) -> None:
        table.add_row(f"[bold]{title}[/]", "")

    def row(k: str, val: object) -> None:
        table.add_row(f"  {k}", escape(str(val)))

    section("file")
    row("path", info["file"])
    if info.get("hub"):
        row("from the Hub", f"{info['hub']['repo']} at commit {info['hub']['commit']}")
    row("size", f"{info['size_bytes']:,} bytes")
    row("format", f"version {info['format_version']}, created {info['created']}")
    row("versions", ", ".join(f"{k} {val}" for k, val in info["versions"].items()))
    section("model")
    row(
        "architecture",
        f"{m['cell'].upper()} {m['layers']}×{m['hidden']}, embed {m['embed']}, dropout {m['dropout']}",
    )
    row("parameters", f"{m['parameters']:,}")
    if m.get("weight_drop") or m.get("locked_dropout"):
        row("regularisers", _regularisers(m))
    w = info["weights"]
    row("weights", _weights_line(w))
    if info.get("init_from"):
        row("initialised from", _init_line(info["init_from"]))
    section("vocabulary")
    row("size", v["size"])
    row("preview", v["preview"])
    section("corpus")
    row("name", c.get("name"))
    splits = c.get("splits", {})
    row(
        "chars",
        f"{c.get('chars', 0):,} (train {splits.get('train', 0):,}, val {splits.get('val', 0):,})",
    )
    row("sha256", c.get("sha256"))
    section("training")
    row("steps", f"{t['steps']:,} ({t['epochs']} epochs, {t['chars_seen']:,} chars seen)")
    row(
        "time",
        f"{duration(t['elapsed_seconds'])} on {t['device']} ({t['precision']}, {_processes(t['world_size'])})",
    )
    if t["best_val_loss"] is not None:
        row(
            "best val",
            f"{t['best_val_loss']:.4f} nats/char, {t['best_val_bpc']:.4f} bpc at step {t['best_step']:,}",
        )
    if t["last_train_loss"] is not None:
        row("last train loss", f"{t['last_train_loss']:.4f}")
    row(
        "status",
        "finished (" + str(t["stop_reason"]) + ")"
        if t["finished"]
        else f"resumable ({t['stop_reason'] or 'in progress'})",
    )
    row("hyperparameters", " ".join(f"{k}={val}" for k, val in t["config"].items()))
    if info.get("plan"):
        row("plan", _plan_line(info["plan"], m))
    h = info["history"]
    if h["train"]["loss"]:
        section("loss curve")
        row(
            f"train ({h['train']['loss'][0]:.2f} → {h['train']['loss'][-1]:.2f})",
            sparkline(h["train"]["loss"]),
        )
    if h["val"]["loss"]:
        row(
            f"val ({h['val']['loss'][0]:.2f} → {h['val']['loss'][-1]:.2f})",
            sparkline(h["val"]["loss"]),
        )
    console.print(table)
    if show_vocab:
        vt = Table("id", "char", "code point", "count", box=None)
        counts = v.get("counts") or [None] * len(v["chars"])
        for i, (ch, n) in enumerate(zip(v["chars"], counts, strict=True)):
            vt.add_row(str(i), escape(repr(ch)), f"U+{ord(ch):04X}", "" if n is None else f"{n:,}")
        console.print(vt)


def _regularisers(m: dict) -> str:
    parts = [f"weight-drop {m['weight_drop']}"] if m.get("weight_drop") else []
    return ", ".join(parts + (["locked dropout"] if m.get("locked_dropout") else []))


def _weights_line(w: dict) -> str:
    """Which weights sampling uses, and what else the file keeps."""
    if w["sampling"] == "average":
        what = f"averaged (EMA, decay {w['ema_decay']}) for sample/score/serve"
        return what + ("; raw weights kept for --resume" if w["resumable"] else "")
    if w["average"]:
        return "raw (they scored better than the average, which is kept for --resume)"
    return "raw training weights (no average)"


def _init_line(src: dict) -> str:
    new = src.get("new_chars") or []
    added = f"; {len(new)} new characters" if new else ""
    return f"{src.get('path')} (step {src.get('step')}, sha256 {src.get('sha256')}{added})"


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"


def preview(event: Snapshot, length: int = 200, temperature: float = 0.8) -> str:
    """A sample drawn from a training run's current weights (`--sample-every`), seeded by the step
    so the same run shows the same previews."""
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.sampler import Sampler

    engine = Engine(event.model, event.vocab, event.weights, threads=1)
    return Sampler(engine).generate("", length, temperature, rng_seed=event.step)
