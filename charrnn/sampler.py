"""Sampling: logits adjustment (temperature / top-k / top-p), a fast single-character step, and the
`Sampler` that turns a checkpoint into text (`charrnn.load(path).generate(...)`).

The fast step rearranges the trained weights once — the first layer's input projection becomes a
vocab × gates table, each layer one matrix product per character, no autograd — because calling the
nn.LSTM module per character spends most of its time outside arithmetic. Its logits match the module's
forward to float rounding (tested). It does not print; the CLI decides where text goes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import torch

from charrnn import checkpoint, snapshot
from charrnn.errors import InputError
from charrnn.model import CharRNN, State, state_tensors
from charrnn.vocab import Unknown, Vocab

PRIME_CHUNK = 4096


def check_options(
    temperature: float, top_k: int | None, top_p: float | None, length: int = 0, num: int = 1
) -> None:
    """Reject impossible sampling options with a message naming the flag."""
    if length < 0:
        raise InputError(f"--length must be >= 0, got {length}")
    if num < 1:
        raise InputError(f"--num-samples must be >= 1, got {num}")
    if not temperature >= 0:  # also rejects NaN
        raise InputError(f"--temp must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise InputError(f"--top-k must be >= 0 (0 = off), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"--top-p must be in (0, 1], got {top_p}")


def adjust_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Scale by 1/temperature and set every excluded entry to -inf (rows are independent).

    top-k keeps the k largest; top-p keeps the smallest set of most likely characters whose
    probability reaches p (always at least one). temperature must be > 0 here. The row maximum is
    subtracted first (softmax does not change), so a tiny temperature gives 0 and -inf, never inf.
    """
    t = max(temperature, torch.finfo(logits.dtype).tiny)  # below it the dtype would read 0
    out = (logits - logits.max(dim=-1, keepdim=True).values) / t
    if top_k and top_k < out.shape[-1]:
        keep = torch.topk(logits, top_k, dim=-1).indices  # on the raw logits: no rounding ties
        out = torch.full_like(out, float("-inf")).scatter(-1, keep, out.gather(-1, keep))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more likely ones
        drop = before >= top_p
        drop[..., 0] = False  # the most likely always stays (top_p may round to 0 in the dtype)
        out = out.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return out


def pick(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw one id per row; temperature 0 is greedy argmax."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(adjust_logits(logits.float(), temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class FastStep:
    """Advance a batch of streams by one character: ids (B,) → logits (B, vocab)."""

    def __init__(self, model: CharRNN) -> None:
        cfg = model.cfg
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        rnn = model.rnn
        with torch.inference_mode():
            w = {k: v.detach().float() for k, v in rnn.named_parameters()}
            emb = model.embed.weight.detach().float()
            self.table = emb @ w["weight_ih_l0"].T + w["bias_ih_l0"]  # vocab × gates
            self.w_hh = [w[f"weight_hh_l{i}"].T.contiguous() for i in range(cfg.layers)]
            self.b_hh = [w[f"bias_hh_l{i}"] for i in range(cfg.layers)]
            self.w_ih = [None] + [w[f"weight_ih_l{i}"].T.contiguous() for i in range(1, cfg.layers)]
            self.b_ih = [None] + [w[f"bias_ih_l{i}"] for i in range(1, cfg.layers)]
            if cfg.cell != "gru":  # one product per layer: [x, h] @ [W_ih; W_hh] with b_ih + b_hh
                self.table = self.table + self.b_hh[0]
                self.w_cat = [None] + [
                    torch.cat([self.w_ih[i], self.w_hh[i]], 0).contiguous()
                    for i in range(1, cfg.layers)
                ]
                self.b_cat = [None] + [self.b_ih[i] + self.b_hh[i] for i in range(1, cfg.layers)]
            self.w_out = model.head.weight.detach().float().T.contiguous()
            self.b_out = model.head.bias.detach().float()
        self.h: list[torch.Tensor] = []
        self.c: list[torch.Tensor] = []

    def set_state(self, state: State) -> None:
        """Take the module's state (layers × B × H tensors) after a prime."""
        ts = state_tensors(state)
        self.h = [ts[0][i].float().contiguous() for i in range(self.layers)]
        self.c = [ts[1][i].float().contiguous() for i in range(self.layers)] if len(ts) > 1 else []

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.table[ids]
        H = self.hidden
        for i in range(self.layers):
            h = self.h[i]
            if self.cell == "gru":
                gi = x if i == 0 else torch.addmm(self.b_ih[i], x, self.w_ih[i])
                gh = torch.addmm(self.b_hh[i], h, self.w_hh[i])
                rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
                n = torch.tanh(torch.addcmul(gi[:, 2 * H :], rz[:, :H], gh[:, 2 * H :]))
                h = torch.lerp(n, h, rz[:, H:])  # (1 - z) n + z h
            else:
                if i == 0:
                    g = torch.addmm(x, h, self.w_hh[0])
                else:
                    g = torch.addmm(self.b_cat[i], torch.cat([x, h], 1), self.w_cat[i])
                if self.cell == "rnn":
                    h = torch.tanh(g)
                else:
                    s = torch.sigmoid(g)
                    c = torch.addcmul(
                        s[:, H : 2 * H] * self.c[i], s[:, :H], torch.tanh(g[:, 2 * H : 3 * H])
                    )
                    self.c[i] = c
                    h = s[:, 3 * H :] * torch.tanh(c)
            self.h[i] = h
            x = h
        return torch.addmm(self.b_out, x, self.w_out)


class Sampler:
    """A trained model ready to write text. Build with `charrnn.load(path)` or from a live model."""

    def __init__(self, model: CharRNN, vocab: Vocab, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model
        self.vocab = vocab
        self.step = FastStep(model)
        self.last_seed: int | None = None
        self.header: checkpoint.Header | None = None  # set when loaded from a file

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Sampler:
        header = checkpoint.read_header(path)
        vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
        model = snapshot.build_model(header)
        if device != "cpu":
            model = model.to(device)
        sampler = cls(model, vocab, device)
        sampler.header = header
        return sampler

    # --- public API ---------------------------------------------------------------------------
    def generate(
        self,
        prime: str = "",
        length: int = 2000,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kw: object,
    ) -> str:
        """The continuation of `prime` (without it), `length` characters at most."""
        return "".join(self.stream(prime, length, temperature, top_k, top_p, **kw))

    def stream(
        self,
        prime: str = "",
        length: int = 2000,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kw: object,
    ) -> Iterator[str]:
        """Yield the continuation character by character as it is generated."""
        for pieces in self.stream_batch(prime, length, temperature, top_k, top_p, 1, **kw):
            yield from pieces[0]

    def generate_batch(self, prime: str, length: int, num_samples: int, **kw: object) -> list[str]:
        parts: list[list[str]] = [[] for _ in range(num_samples)]
        for pieces in self.stream_batch(prime, length, num_samples=num_samples, **kw):
            for part, piece in zip(parts, pieces, strict=True):
                part.append(piece)
        return ["".join(p) for p in parts]

    def stream_batch(
        self,
        prime: str = "",
        length: int = 2000,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        num_samples: int = 1,
        *,
        rng_seed: int | None = None,
        stop: str | None = None,
        unknown: Unknown = "error",
    ) -> Iterator[list[str]]:
        """Generate num_samples continuations together; yields one string per sample per step
        (empty once a sample has hit `stop`, which is not included)."""
        check_options(temperature, top_k, top_p, length, num_samples)
        self.last_seed = secrets.randbits(63) if rng_seed is None else rng_seed
        gen = torch.Generator(self.device).manual_seed(self.last_seed)
        ids = self.vocab.encode(prime, unknown)
        if length == 0:
            return
        logits, first = self._prime(ids, num_samples, gen)
        stops = [_Stop(stop) for _ in range(num_samples)]
        chars = self.vocab.chars
        nxt = first if first is not None else pick(logits, temperature, top_k, top_p, gen)
        for n in range(length):
            out = [s.feed(chars[i]) for s, i in zip(stops, nxt.tolist(), strict=True)]
            yield out
            if all(s.done for s in stops):
                return
            if n + 1 < length:
                nxt = pick(self.step(nxt), temperature, top_k, top_p, gen)
        yield [s.flush() for s in stops]

    # --- internals ----------------------------------------------------------------------------
    @torch.inference_mode()
    def _prime(
        self, ids: list[int], batch: int, gen: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run the prime through the module (fast for long primes) and leave the fast step's state
        after it; returns (logits for the next character, None). With no prime, start from a
        newline, or if there is none, return (None, a first character drawn from the corpus's
        character frequencies), which is both the first output and the next input."""
        if not ids and "\n" in self.vocab:
            ids = [self.vocab.chars.index("\n")]
        state = self.model.init_state(batch, self.device)
        if not ids:
            counts = torch.tensor(self.vocab.counts or [1] * self.vocab.size, dtype=torch.float)
            first = torch.multinomial(counts, batch, replacement=True, generator=gen)
            self.step.set_state(state)
            return None, first.to(self.device)
        was_training = self.model.training
        self.model.eval()  # a preview during training must not drop out while priming
        seq = torch.tensor(ids, dtype=torch.long, device=self.device)
        for start in range(0, len(ids), PRIME_CHUNK):
            out, state = self.model(seq[start : start + PRIME_CHUNK].expand(batch, -1), state)
        self.model.train(was_training)
        self.step.set_state(state)
        return out[:, -1], None


class _Stop:
    """Hold back text that might be the start of the stop string; end the sample when it appears."""

    def __init__(self, stop: str | None) -> None:
        self.stop, self.buf, self.done = stop or "", "", False

    def feed(self, ch: str) -> str:
        if self.done:
            return ""
        if not self.stop:
            return ch
        self.buf += ch
        if self.buf.endswith(self.stop):
            self.done, out, self.buf = True, self.buf[: -len(self.stop)], ""
            return out
        longest = min(len(self.buf), len(self.stop) - 1)
        keep = next(k for k in range(longest, -1, -1) if self.buf.endswith(self.stop[:k]))
        out, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep :]
        return out

    def flush(self) -> str:
        out, self.buf = ("" if self.done else self.buf), ""
        return out
