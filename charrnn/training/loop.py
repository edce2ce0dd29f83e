"""The training loop (`Trainer`): runs what a `TrainConfig` describes: device and precision, model
and optimizer, the step, stateful evaluation, resume, metrics.jsonl, and several processes.

Policy (plan, schedule, stopping rules, events) lives beside it in `train`, checkpoint writing in
`saving`; this module does not render anything, draw previews, handle signals or exit: it reports
events and raises `CharRNNError`s.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn import checkpoint
from charrnn.data.dataset import Dataset
from charrnn.errors import InputError
from charrnn.model import (
    CharRNN,
    ModelConfig,
    configure_adamw,
    detach_state,
    parameter_count,
)
from charrnn.training import distributed, saving
from charrnn.training import state as snapshot
from charrnn.training.averaging import Averaged
from charrnn.training.batches import fit_streams
from charrnn.training.config import TrainConfig, bpc
from charrnn.training.evaluate import evaluate, evaluate_voices, unigram_entropy
from charrnn.training.events import Callback, Evaluated, Finished, Logged, Note, Snapshot, Started
from charrnn.training.finetune import Start
from charrnn.training.metrics import MetricsLog
from charrnn.training.plan import fit_warmup, has_validation
from charrnn.training.precision import autocast, resolve_precision
from charrnn.training.rundir import RunLock
from charrnn.training.saving import Diverged  # raised from here: callers catch it by this name
from charrnn.training.schedule import Progress, lr_at, progress_of, stop_reason, total_steps
from charrnn.training.voiced_batches import make_batcher, voiced_epoch

# Stop reasons that leave the run unfinished (no final evaluation): a signal, or a caller's stop.
RESUMABLE = ("interrupted", "stopped")


class Trainer:
    """One training run. Build it, then `run()`; `resume` is a checkpoint header to continue.
    A fresh run refuses an `out_dir` that holds another run's files unless `overwrite`.

    `plan` is `training.plan`'s record of how the run was sized, stored in its checkpoints; `spent`
    the seconds planning took (calibration), counted against a time budget. A run without a plan
    (the Python API, or a checkpoint from before plans) has its warmup fitted here instead."""

    def __init__(
        self,
        dataset: Dataset,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        out_dir: Path,
        *,
        device: str = "auto",
        resume: checkpoint.Header | None = None,
        on_event: Callback = lambda e: None,
        should_stop=lambda: None,
        world: distributed.World | None = None,
        allow_new_corpus: bool = False,
        start: Start | None = None,
        overwrite: bool = False,
        plan: dict | None = None,
        spent: float = 0.0,
    ) -> None:
        self.world = world or distributed.from_env()
        self.device = distributed.device(self.world, device)
        distributed.init(self.world, self.device)
        self.dataset, self.out_dir, self.emit = dataset, out_dir, on_event
        self.should_stop, self.overwrite = should_stop, overwrite
        self.vocab = dataset.vocab
        self.voices = dataset.voices  # a labelled corpus's (data.voices.VoiceTable), else None
        new_corpus = resume is not None and self._check_corpus(resume, allow_new_corpus)
        self.fresh = resume is None
        train_ids, self.val_ids = dataset.split("train"), dataset.split("val")
        # a labelled text's epoch is what the balance makes of its voices
        cfg, self.train_chars = voiced_epoch(cfg, self.voices, model_cfg, len(train_ids))
        streams = (
            cfg.batch_size * int(resume.meta["state"].get("world_size", 1)) if resume else None
        )
        batch, seq, note = fit_streams(
            self.train_chars, cfg.batch_size, cfg.seq_len, self.world.size, streams
        )
        if note:
            self.emit(Note(note))
        cfg = cfg.with_(batch_size=batch, seq_len=seq)
        self.precision = resolve_precision(cfg.precision, self.device, model_cfg.cell)
        self.cfg, self.model_cfg = cfg, model_cfg
        self.batcher = make_batcher(train_ids, self.voices, cfg, self.world.rank, self.world.size)
        self.horizon = total_steps(cfg, self.batcher.steps_per_epoch)
        self.plan = resume.meta.get("plan") if resume is not None else plan
        if self.plan is None:  # the plan fitted it already, and a resumed plan is never remade
            cfg, shortened = fit_warmup(cfg, self.batcher.steps_per_epoch, self.world.size)
            if shortened:
                self.emit(Note(shortened))
        self.cfg = cfg  # with the capped warmup, which the checkpoint records for a resumed run
        torch.manual_seed(cfg.rng_seed)
        self.model = CharRNN(model_cfg).to(self.device)
        if start is not None:  # fine-tuning: the given weights, fitted to this vocabulary
            self.model.load_state_dict(start.tensors)
        self.init_from = start.record if start else resume.meta.get("init_from") if resume else None
        self.net: torch.nn.Module = self.model
        if self.world.size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = configure_adamw(self.model, cfg.lr, cfg.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.progress = Progress(elapsed=spent)
        self.history: dict[str, list] = {"train": [], "val": []}
        if self.voices is not None:  # [step, each voice's validation loss (None: none)]
            self.history["val_voices"] = []
        self.voice_val: dict[str, float] = {}  # the latest per-voice validation losses
        self.carry = self.model.init_state(cfg.batch_size, self.device)
        self.average = Averaged(self.model, cfg.ema) if cfg.ema > 0 else None
        self.use_average = False
        if resume is not None:
            self._restore(resume)
            if new_corpus:  # the data position means nothing in other text: start it afresh
                self.progress.batch_in_epoch = 0
        self.last_path = out_dir / "last.ckpt"
        self.best_path = out_dir / "best.ckpt"

    # --- resume -------------------------------------------------------------------------------
    def _check_corpus(self, header: checkpoint.Header, allow_new: bool) -> bool:
        """Refuse other text than the checkpoint's (True: a new corpus, allowed and announced)."""
        diffs = self.dataset.check_resume(header.path, header.meta, allow_new)
        if diffs:
            self.emit(Note(f"continuing on a new corpus: {diffs}"))
        return bool(diffs)

    def _restore(self, header: checkpoint.Header) -> None:
        per = self.cfg.batch_size
        rows = slice(self.world.rank * per, (self.world.rank + 1) * per)
        carry = snapshot.restore(
            header, self.model, self.optimizer, self.scaler, rows, self.device, self.average
        )
        if carry is not None:
            self.carry = carry
        s = header.meta["state"]
        self.use_average = self.average is not None and s.get("weights") == "average"
        self.progress = Progress(**{k: s[k] for k in asdict(Progress()) if k in s})
        self.progress.finished, self.progress.stop_reason = False, None
        kept = ("train", "val", "val_voices") if self.voices is not None else ("train", "val")
        self.history = {k: [list(r) for r in header.meta["history"].get(k, [])] for k in kept}

    # --- the step -----------------------------------------------------------------------------
    def _step(self, lr: float) -> torch.Tensor:
        cfg, p = self.cfg, self.progress
        if p.batch_in_epoch == 0:
            self.carry = self.model.init_state(cfg.batch_size, self.device)
        if self.voices is None:
            x, y = (torch.from_numpy(a) for a in self.batcher.batch(p.batch_in_epoch, p.epoch))
            v = None
        else:
            x, y, v = (
                torch.from_numpy(a) for a in self.batcher.batch(p.batch_in_epoch, p.epoch, p.step)
            )
        pin = self.device.type == "cuda"
        x = (x.pin_memory() if pin else x).to(self.device, non_blocking=True)
        y = (y.pin_memory() if pin else y).to(self.device, non_blocking=True)
        voiced = () if v is None or not self.model_cfg.voices else (v.to(self.device),)
        # Dropout masks come from a seed derived from (rng_seed, step, rank): a resumed run draws
        # exactly what an uninterrupted one would, whatever ran in between (evaluation, sampling).
        torch.manual_seed((cfg.rng_seed * 1_000_003 + p.step) * 64 + self.world.rank)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        with autocast(self.device, self.precision):
            logits, state = self.net(x, self.carry, *voiced)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(p.step)
        self.carry = detach_state(state)
        p.step += 1
        p.batch_in_epoch += 1
        p.chars_seen += x.numel() * self.world.size
        if p.batch_in_epoch == self.batcher.steps_per_epoch:
            p.epoch, p.batch_in_epoch = p.epoch + 1, 0
        return loss.detach()

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> Finished:
        """Train until a stopping rule fires; always leaves a whole last.ckpt behind."""
        lock = RunLock(self.out_dir) if self.world.main else contextlib.nullcontext()
        with lock:
            refused = (
                saving.claim(self.out_dir, self.fresh, self.overwrite) if self.world.main else None
            )
            refused = distributed.broadcast(self.world, refused)  # every process stops, or none
            if refused:
                raise InputError(str(refused))
            if self.world.main:
                self._metrics = MetricsLog(self.out_dir / "metrics.jsonl", self.progress.step)
            try:
                return self._loop()
            finally:
                if self.world.main:
                    self._metrics.close()

    def _loop(self) -> Finished:
        cfg, p = self.cfg, self.progress
        self._announce()
        t0 = time.monotonic() - p.elapsed
        acc, n_acc, busy, last_eval = torch.zeros((), device=self.device), 0, 0.0, -1
        reason = None
        while True:
            p.elapsed = time.monotonic() - t0
            reason = self._stop_now()
            if reason:
                break
            t_step = time.perf_counter()
            lr = lr_at(p.step, progress_of(p.step, p.elapsed, self.horizon, cfg.time_budget), cfg)
            acc += self._step(lr)
            n_acc += 1
            evaluate_now = p.step % cfg.eval_every == 0
            # an evaluation without a validation split scores the latest training loss: log it first
            if p.step % cfg.log_every == 0 or p.step == cfg.max_steps or evaluate_now:
                self._log(acc, n_acc, lr, busy, t_step, t0)
                n_acc, busy = 0, 0.0
            else:
                busy += time.perf_counter() - t_step
            if evaluate_now:
                self._evaluate_and_save()
                last_eval = p.step
            if cfg.sample_every and p.step % cfg.sample_every == 0 and self.world.main:
                self._preview()
        if n_acc and reason not in RESUMABLE:  # one process stops at any step; others at log steps
            self._log(acc, n_acc, lr, busy, time.perf_counter(), t0)
        p.elapsed = time.monotonic() - t0
        p.stop_reason = reason
        if reason in RESUMABLE:  # saved as it is: resuming continues exactly
            self._save(best=False)
        else:
            p.finished = True
            if last_eval != p.step or p.step == 0:
                self._evaluate_and_save()
            else:  # evaluated at this very step: save the finished state (best too, if it was)
                self._save(best=p.best_step == p.step)
        best = self.best_path if self.best_path.exists() else None
        done = Finished(
            reason,
            p.step,
            p.epoch,
            p.elapsed,
            p.best_val_loss,
            p.best_step,
            str(self.last_path),
            str(best) if best else None,
        )
        self.emit(done)
        return done

    def _stop_now(self) -> str | None:
        """Stopping rules; with several processes only every log step, agreed by all ranks."""
        p = self.progress
        if self.world.size == 1:
            return stop_reason(p, self.cfg, self.should_stop())
        if p.step % self.cfg.log_every and not (
            self.cfg.max_steps and p.step >= self.cfg.max_steps
        ):
            return None
        local = stop_reason(p, self.cfg, self.should_stop())
        wanted = distributed.all_sum(self.world, [1.0 if local else 0.0], self.device)[0]
        return (local or "stopped by another process") if wanted else None

    def _announce(self) -> None:
        counts = list(self.vocab.counts or [1] * self.vocab.size)
        self.emit(
            Started(
                out_dir=str(self.out_dir),
                device=str(self.device),
                precision=self.precision,
                parameters=parameter_count(self.model),
                vocab_size=self.vocab.size,
                train_chars=self.train_chars,
                val_chars=len(self.val_ids),
                eval_chars=min(len(self.val_ids), self.cfg.eval_chars),
                unigram_entropy=unigram_entropy(counts),
                batch_size=self.cfg.batch_size,
                seq_len=self.cfg.seq_len,
                world_size=self.world.size,
                steps_per_epoch=self.batcher.steps_per_epoch,
                total_steps=self.horizon,
                time_budget=self.cfg.time_budget,
                resumed_step=self.progress.step,
            )
        )
        if not has_validation(len(self.val_ids)):
            self.emit(Note("no validation split: best.ckpt follows the training loss"))

    def _log(self, acc, steps: int, lr: float, busy: float, t_step: float, t0: float) -> None:
        """Log the mean training loss of the steps since the last record (all ranks together);
        reading it waits for the device, so that wait counts as step time from t_step."""
        p = self.progress
        loss = (
            distributed.all_sum(self.world, [acc.item() / steps], self.device)[0] / self.world.size
        )
        acc.zero_()
        busy += time.perf_counter() - t_step
        elapsed = time.monotonic() - t0
        if not math.isfinite(loss):
            raise self._diverged(f"the training loss is {loss}")
        p.last_train_loss = loss
        cps = steps * self.cfg.batch_size * self.cfg.seq_len * self.world.size / max(busy, 1e-9)
        self.history["train"].append([p.step, loss])
        prog = progress_of(p.step, elapsed, self.horizon, self.cfg.time_budget)
        rec = Logged(p.step, p.epoch, loss, lr, cps, elapsed, prog)
        self._record(
            {
                "step": p.step,
                "epoch": p.epoch,
                "train_loss": loss,
                "lr": lr,
                "chars_per_sec": round(cps, 1),
                "elapsed": round(elapsed, 3),
            }
        )
        self.emit(rec)

    @property
    def sampling_model(self) -> CharRNN:
        """The weights `sample` will use: the average, where it scored better at the last
        evaluation (early in a run it lags behind the raw weights)."""
        return self.average.model if self.average is not None and self.use_average else self.model

    def _evaluate_and_save(self) -> None:
        p = self.progress
        raw = averaged = None
        per_voice: list | None = None
        if has_validation(len(self.val_ids)):
            raw, per_raw = self._validate(self.model)
            if self.average is not None:
                averaged, per_averaged = self._validate(self.average.model)
            self.use_average = averaged is not None and averaged < raw
            per_voice = per_averaged if self.use_average else per_raw
            loss, source = min(raw, averaged if averaged is not None else raw), "val"
        else:  # no held-out text to compare the two on: the raw weights fit the text, as before
            self.use_average = False
            loss, source = (
                (p.last_train_loss if p.last_train_loss is not None else math.inf),
                "train",
            )
        if not math.isfinite(loss):
            raise self._diverged(f"the validation loss is {loss}")
        best = p.best_val_loss is None or loss < p.best_val_loss
        if best:
            p.best_val_loss, p.best_step, p.evals_since_best = loss, p.step, 0
        else:
            p.evals_since_best += 1
        self.history["val"].append([p.step, loss])
        rec = {"step": p.step, "epoch": p.epoch, "val_loss": loss, "val_bpc": bpc(loss)}
        both = {"raw_val_loss": raw, "ema_val_loss": averaged} if averaged is not None else {}
        if self.voices is not None and per_voice is not None:
            self.history["val_voices"].append([p.step, *per_voice])
            self.voice_val = self.voices.named(per_voice)
            both |= {"val_voices": self.voice_val}
        self._record(rec | {"source": source} | both)
        voices = self.voice_val if per_voice is not None else None
        self.emit(Evaluated(p.step, loss, bpc(loss), best, source, raw, averaged, voices))
        self._save(best)

    def _validate(self, model: CharRNN) -> tuple[float, list[float | None] | None]:
        """The validation loss (for voices: the unweighted mean of the voices') and each voice's."""
        ids, chars, world = self.val_ids, self.voices and self.voices.chars("val"), self.world
        if chars is None:
            return evaluate(model, ids[: self.cfg.eval_chars + 1], self.device, world)[0], None
        return evaluate_voices(model, ids, chars, self.cfg.eval_chars, self.device, world)

    def _record(self, rec: dict) -> None:
        if self.world.main:
            self._metrics.write(rec)

    def _preview(self) -> None:
        """Report the weights sampling would use now; the caller draws the preview from them."""
        weights = {
            k: v.detach().float().cpu().numpy() for k, v in self.sampling_model.state_dict().items()
        }
        self.emit(Snapshot(self.progress.step, self.model_cfg, self.vocab, weights))

    # --- checkpoints --------------------------------------------------------------------------
    def _diverged(self, what: str) -> Diverged:
        return saving.diverged(self, what)

    def _save(self, best: bool) -> None:
        saving.save(self, best)
