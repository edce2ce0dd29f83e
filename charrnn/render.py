"""How a training run looks where the user is: the terminal handler `charrnn train` uses (stderr,
a Rich bar on a terminal, plain periodic lines otherwise) and the notebook handler (one output
updated in place); both take the events of `charrnn.train`. With `charrnn/cli/`, the only code
that writes to the user.

Generated text never passes through the console (Rich would wrap it and render markup); colour
follows Rich's own rules, so NO_COLOR and non-TTY output stay plain.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from charrnn.api.events import (
    AllText,
    Evaluated,
    FineTuning,
    Finished,
    Logged,
    Note,
    Planned,
    Prepared,
    Snapshot,
    Started,
)

# the stderr console every command writes its messages to
console = Console(stderr=True, highlight=False, soft_wrap=True)
stderr = console  # the name `Terminal` falls back to (its parameter shadows `console`)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Terminal:
    """Renders a run's events on the stderr console: the preparation lines, then training (a
    Rich bar on a terminal, plain periodic lines otherwise); use as a context manager around the
    run. The bar starts with training, so the lines before it print as plain lines."""

    PLAIN_INTERVAL = 10.0  # seconds between plain progress lines when stderr is not a TTY

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console, self.quiet = console or stderr, quiet
        self.live = self.console.is_terminal and not quiet
        self.progress: Any = None
        self.task: Any = None
        self.last_val: Evaluated | None = None
        self.last_plain = 0.0
        self.total: int | None = None

    def __enter__(self) -> Terminal:
        return self

    def _start_bar(self) -> None:
        if self.live and self.progress is None:
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

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def __call__(self, event: object) -> None:
        if isinstance(event, Prepared | AllText | FineTuning | Planned):
            if not self.quiet and event.text:
                self.console.print(event.text, highlight=False, markup=False)
        elif isinstance(event, Started):
            self._start_bar()
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
                f"{event.val_bpc:.4f} bpc{mark}{raw}{escape(voice_losses(event))}"
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


def preview(event: Snapshot, length: int = 200, temperature: float = 0.8) -> str:
    """A sample drawn from a training run's current weights (`--sample-every`), seeded by the step
    so the same run shows the same previews."""
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.sampler import Sampler

    engine = Engine(event.model, event.vocab, event.weights, threads=1)
    return Sampler(engine).generate("", length, temperature, rng_seed=event.step)


class Notebook:
    """A run's progress in a Jupyter notebook: one output, updated in place (IPython.display with
    a display_id; no widgets), holding the lines before training, the latest step with its loss,
    speed and ETA, and the latest evaluation. `charrnn.train(..., on_event=Notebook())`.

    Updates at most every `interval` seconds while training (always at evaluations and the end)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.head: list[str] = []
        self.status = ""
        self.val = ""
        self.end = ""
        self.total: int | None = None
        self.handle: Any = None
        self.shown = 0.0

    def __call__(self, event: object) -> None:
        if isinstance(event, Prepared | AllText | FineTuning | Planned):
            self.head += [line for line in event.text.splitlines() if line]
        elif isinstance(event, Note):
            self.head.append(f"note: {event.message}")
        elif isinstance(event, Started):
            self.total = event.total_steps
            resumed = f", resuming at step {event.resumed_step:,}" if event.resumed_step else ""
            self.head.append(
                f"{event.out_dir}: {event.parameters:,} parameters on {event.device} "
                f"({event.precision}){resumed}; {event.train_chars:,} train chars, "
                f"{event.val_chars:,} val chars, vocab {event.vocab_size}"
            )
        elif isinstance(event, Logged):
            eta = (
                event.elapsed * (1 - min(event.progress, 1)) / event.progress
                if event.progress
                else None
            )
            step = f"step {event.step:,}" + (f"/{self.total:,}" if self.total else "")
            self.status = (
                f"{step} | loss {event.train_loss:.3f} | {event.chars_per_sec:,.0f} chars/s | "
                f"{duration(event.elapsed)} elapsed, ETA {duration(eta)}"
            )
            if time.monotonic() - self.shown < self.interval:
                return
        elif isinstance(event, Evaluated):
            what = "val" if event.source == "val" else "train (no val split)"
            best = " (best)" if event.best else ""
            self.val = (
                f"step {event.step:,}: {what} loss {event.val_loss:.4f} nats/char, "
                f"{event.val_bpc:.4f} bpc{best}{voice_losses(event)}"
            )
        elif isinstance(event, Finished):
            self.end = (
                f"stopped ({event.reason}) at step {event.step:,} after {duration(event.elapsed)};"
                f" checkpoints: {event.best_path or '-'} (best), {event.last_path} (last)"
            )
        else:
            return
        self._show()

    def text(self) -> str:
        return "\n".join([*self.head, *(s for s in (self.status, self.val, self.end) if s)])

    def _show(self) -> None:
        from IPython.display import display

        bundle = {"text/plain": self.text()}
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)
        self.shown = time.monotonic()


def voice_losses(event: Evaluated, shown: int = 4) -> str:
    """A voiced run's per-voice validation losses, short: each voice's for a few voices, else the
    best and the worst ('' for unlabelled text)."""
    if not event.voices:
        return ""
    pairs = sorted(event.voices.items(), key=lambda kv: kv[1])
    if len(pairs) > shown:
        (a, x), (b, y) = pairs[0], pairs[-1]
        return f"; {len(pairs)} voices {x:.3f} ({a}) to {y:.3f} ({b})"
    return "; " + ", ".join(f"{n} {x:.3f}" for n, x in event.voices.items())
