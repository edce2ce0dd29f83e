"""`charrnn.train` and `charrnn.plan`: a training run from Python, exactly as `charrnn train` runs
it (the same checks, preparation, plan, lock, run directory and speed-cache refresh), with its
events delivered to the caller's handler on the caller's thread, and a `Run` as the result.

Single-process (torchrun stays the CLI's: under it each rank makes this call). It restores what it
changes process-wide (torch's thread count, the SIGINT handler) and renders nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
import signal
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from charrnn.api.options import TrainOptions, option_fields, unknown
from charrnn.api.prepare import Setup, check, prepare
from charrnn.training.events import Finished, Logged, Started
from charrnn.training.plan import Plan

# A finished run refreshes the speed cache only after this many speed records (log lines): a short
# run's figure is mostly start-up.
MIN_SPEED_RECORDS = 10
Handler = Callable[[object], None]
Stopper = Callable[[], object]


class Stop(Exception):
    """Raise from an `on_event` handler to end the run after this step: last.ckpt is saved at the
    step (stop reason "stopped", resumable exactly) and `charrnn.train` returns its `Run`."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `charrnn.train`: last.ckpt was saved, `run` says where and at which step.
    A KeyboardInterrupt, so `except Exception` does not swallow it."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"interrupted: saved {run.last} at step {run.step}")
        self.run = run


@dataclass(frozen=True)
class Run:
    """A finished (or stopped) run: every field of its `Finished` event, where it lives, and what
    it learned. `load()` gives a sampler over its best (or last) checkpoint."""

    reason: str
    step: int
    epoch: int
    elapsed: float
    best_val_loss: float | None
    best_step: int | None
    last_path: str
    best_path: str | None
    out_dir: str  # as given or chosen (runs/<corpus>); `dir` is absolute
    corpus: str
    dir: Path
    best_val_source: str  # "val", or "train" where the text had no validation split
    history: dict[str, list[list[float]]] = field(repr=False)

    @property
    def stop_reason(self) -> str:
        return self.reason

    @property
    def best(self) -> Path | None:
        return self.dir / "best.ckpt" if self.best_path else None

    @property
    def last(self) -> Path:
        return self.dir / "last.ckpt"

    @property
    def best_val(self) -> float | None:
        """The best evaluation's loss in nats/char: on validation text, or (best_val_source
        "train") the training loss where there was none."""
        return self.best_val_loss

    def load(self, which: str = "best", **kw: Any):
        """A `charrnn.Sampler` over the best or the last checkpoint (`charrnn.load`'s keywords)."""
        from charrnn import load

        path = {"best": self.best or self.last, "last": self.last}.get(which)
        if path is None:
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        return load(str(path), **kw)

    def summary(self) -> dict:
        """What `charrnn train --json` prints: the run directory and the final event's fields."""
        return {"out_dir": self.out_dir} | {f.name: getattr(self, f.name) for f in fields(Finished)}


@dataclass
class _State:
    """What the handler relay and the SIGINT handler tell the loop."""

    requested: str | None = None
    error: BaseException | None = None
    sigint: bool = False
    training: bool = False
    speeds: list[float] = field(default_factory=list)
    source: str = "val"


def train(
    corpus: str | Path | None = None,
    *,
    text: str | None = None,
    out: str | Path | None = None,
    on_event: Handler | None = None,
    should_stop: Stopper | None = None,
    plan: Plan | None = None,
    **options: Any,
) -> Run:
    """Train a model, as `charrnn train` does; the keywords are its flags (`--batch-size 32` is
    `batch_size=32`; `time_budget` takes seconds or text such as "5m"). `text=` trains on a string.

    `on_event` receives every event (preparation, the plan, training); raising `charrnn.Stop` there
    ends the run after the step, saved; another exception propagates after that step's saves.
    `should_stop` is polled between steps (truthy: stop, saved). On the main thread the first
    Ctrl-C stops after the step and raises `RunInterrupted` (carrying the `Run`); a second one
    raises KeyboardInterrupt at once. `plan`: train this plan (from `charrnn.plan`) as it is."""
    unknown(options)
    return _train(corpus, text, TrainOptions(out=out, **options), on_event, should_stop, plan)


def plan(
    corpus: str | Path | None = None,
    *,
    text: str | None = None,
    on_event: Handler | None = None,
    **options: Any,
) -> Plan:
    """The plan `charrnn.train` with these options would train (`charrnn train --dry-run`): its
    model and training configs, the notes and the record of what the rules chose.

    On the way it prepares the text into the dataset cache (once), and for a timed fresh run
    measures this machine's speed (about 2% of the budget) and writes it to the speed cache, unless
    `no_calibrate=True` or the cache already holds it. Events as `train`'s, up to `Planned`."""
    unknown(options)
    opts = TrainOptions(**options)
    with _threads_restored():
        setup = check(None if corpus is None else str(corpus), text, opts)
        try:
            return prepare(setup, on_event or _silent).plan
        finally:
            _shutdown(setup)


def _silent(event: object) -> None:
    pass


def main_process() -> bool:
    """Whether this process is the one that reports (rank 0, or the only process)."""
    from charrnn.training import distributed

    return distributed.from_env().main


def _train(corpus, text, opts: TrainOptions, on_event, should_stop, given_plan) -> Run:
    from charrnn.training import distributed
    from charrnn.training.rundir import RunLock, refuse_clobber, run_dir

    state = _State()
    relay = _relay(on_event or _silent, state)
    with _threads_restored(), _sigint(state):
        setup = check(None if corpus is None else str(corpus), text, opts)
        given, world = setup.given, setup.world
        name = run_dir(given.get("out"), setup.label, given.get("resume")) if world.main else None
        out_dir = distributed.broadcast(world, name)
        created = not out_dir.exists()
        try:
            with RunLock(out_dir) if world.main else contextlib.nullcontext():
                if world.main:
                    refuse_clobber(out_dir, bool(given.get("overwrite")), given.get("resume"))
                ready = prepare(setup, relay, given_plan)
                if state.sigint:  # Ctrl-C while preparing: nothing was trained
                    raise KeyboardInterrupt
                done, trainer = _run_trainer(setup, ready, out_dir, relay, state, should_stop)
        except BaseException:
            if created and world.main and {p.name for p in out_dir.iterdir()} <= {".lock"}:
                shutil.rmtree(out_dir, ignore_errors=True)  # nothing was trained: leave nothing
            raise
        finally:
            _shutdown(setup)
        _remember_speed(setup, ready, trainer, state)
    run = Run(
        **{f.name: getattr(done, f.name) for f in fields(Finished)},
        out_dir=str(out_dir),
        corpus=setup.corpus,
        dir=out_dir.resolve(),
        best_val_source=state.source,
        history={k: [list(r) for r in v] for k, v in trainer.history.items()},
    )
    if state.error is not None:
        raise state.error
    if state.sigint and done.reason == "interrupted":
        raise RunInterrupted(run)
    return run


def _run_trainer(setup: Setup, ready, out_dir: Path, relay, state: _State, should_stop):
    from charrnn.training.loop import Trainer

    def stopper() -> str | None:
        if state.requested:
            return state.requested
        if state.sigint:
            return "interrupted"
        asked = should_stop() if should_stop is not None else None
        return (asked if isinstance(asked, str) else "stopped") if asked else None

    trainer = Trainer(
        ready.dataset,
        ready.plan.model,
        ready.plan.train,
        out_dir,
        device=str(setup.device),
        resume=setup.header,
        on_event=relay,
        should_stop=stopper,
        world=setup.world,
        allow_new_corpus=bool(setup.given.get("allow_new_corpus")),
        start=ready.start,
        overwrite=bool(setup.given.get("overwrite")),  # refuse_clobber has checked the checkpoints
        plan=ready.plan.record,
        spent=ready.spent,
    )
    state.training = True
    return trainer.run(), trainer


def _relay(handler: Handler, state: _State) -> Handler:
    """The caller's handler as the loop calls it: `Stop` asks for a stop after this step; once
    training runs, another exception stops it too and is raised after the step's saves."""

    def relay(event: object) -> None:
        if isinstance(event, Logged):
            state.speeds.append(event.chars_per_sec)
        elif isinstance(event, Started) and event.val_chars < 2:
            state.source = "train"
        try:
            handler(event)
        except Stop:
            state.requested = state.requested or "stopped"
        except Exception as e:
            if not state.training:
                raise
            if state.error is None:
                state.error = e
            state.requested = state.requested or "interrupted"

    return relay


def _remember_speed(setup: Setup, ready, trainer, state: _State) -> None:
    """The first record includes the slow first steps; a run of a few records says little."""
    from charrnn.training import calibrate

    if setup.world.main and len(state.speeds) > MIN_SPEED_RECORDS:
        real = statistics.median(state.speeds[1:])
        cfg = trainer.cfg  # the batch and seq-len it trained at (fitted to a small text)
        calibrate.remember(
            ready.plan.model,
            trainer.device,
            trainer.precision,
            setup.world.size,
            cfg.batch_size,
            cfg.seq_len,
            real,
        )


def _shutdown(setup: Setup) -> None:
    from charrnn.training import distributed

    distributed.shutdown(setup.world)


@contextlib.contextmanager
def _threads_restored() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def _sigint(state: _State) -> Iterator[None]:
    """For the call only, on the main thread, where Python's own handler is in place (the CLI
    installs its own): the first Ctrl-C asks for a stop, the second raises KeyboardInterrupt."""
    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if not ours:
        yield
        return

    def handle(signum: int, frame: object) -> None:
        if state.sigint:
            raise KeyboardInterrupt
        state.sigint = True

    old = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _signature() -> inspect.Signature:
    """train()'s signature with every option as a typed keyword (help() and editors show them)."""
    sig = inspect.signature(train)
    fixed = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in fixed}
    extra = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f.type)
        for f in option_fields()
        if f.name not in names
    ]
    return sig.replace(parameters=[*fixed, *extra])


train.__signature__ = _signature()  # type: ignore[attr-defined]
