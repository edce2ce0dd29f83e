"""Beam search over characters: the continuation of highest total log-probability under the model
(with a boundary, `--until`, the highest length-normalised one that ends there). Deterministic.

Beams are rows of one engine batch; the engine's per-stream arithmetic makes a beam's scores the same
whatever else is in the batch. The controls (`--ban`, `--no-repeat`, `--until` with its word bounds)
are masks; there is no drawing, so temperature and the truncations do not apply.
"""

from __future__ import annotations

import numpy as np

from charrnn.infer.controls import Guard
from charrnn.infer.logits import log_softmax, redirect
from charrnn.infer.sampler import Options, Sample, Sampler


def beam_search(sampler: Sampler, prime: str, opts: Options, width: int) -> Sample:
    """The best continuation of `prime` with `width` beams (width 1 is greedy decoding)."""
    vocab = sampler.vocab
    voicing = sampler.voicing(opts)  # with guidance, beams score the guided distribution
    logits0, state = sampler.prime_state(prime, opts.unknown, voicing)
    if logits0 is None:  # no prime and no newline: start from the corpus's (or voice's) frequencies
        counts = voicing.counts
        if counts is None:
            counts = np.array(vocab.counts or [1] * vocab.size, dtype=np.float64)
        logits0 = np.log(np.maximum(counts, 1e-300))
    beams = [(0.0, "", Guard(opts.rules, vocab, prime))]
    logits = logits0[None]
    finished: list[tuple[float, str, float]] = []  # (normalised score, text, total)
    for _ in range(opts.length):
        lp = log_softmax(logits)
        cands: list[tuple[float, int, int]] = []  # (total, beam, char)
        for b, (score, _, guard) in enumerate(beams):
            row = lp[b].copy()
            banned = guard.banned()
            if banned is not None:
                row[banned] = -np.inf
            moved = guard.redirect()
            if moved is not None:  # at --max-words: where a word would end, the text ends
                source, target = moved
                p = np.exp(row)
                with np.errstate(divide="ignore"):
                    row = np.log(redirect(p, source, target & np.isfinite(row), p))
            for c in np.argsort(-row, kind="stable")[: width * 2]:
                if np.isfinite(row[c]):
                    cands.append((score + float(row[c]), b, int(c)))
        cands.sort(key=lambda t: -t[0])
        nxt, rows = [], []
        for total, b, c in cands:
            guard = beams[b][2]
            if guard.ends_before(vocab.chars[c]):
                text = beams[b][1]
                finished.append((total / max(1, len(text)), text, total))
                continue
            if len(nxt) < width:
                g = guard.copy()
                g.accept(vocab.chars[c])
                nxt.append((total, beams[b][1] + vocab.chars[c], g))
                rows.append((b, c))
        if finished and (not nxt or max(f[0] for f in finished) >= nxt[0][0] / len(nxt[0][1])):
            break  # with a boundary: no live beam can beat the best ending on its average
        if not nxt:
            beams = [] if not finished else beams
            break
        beams = nxt
        state = state.select([b for b, _ in rows])
        logits = voicing.step(np.array([c for _, c in rows]), state)
    if finished:
        best = max(finished, key=lambda f: f[0])
        return Sample(_stop_cut(best[1], opts.stops)[0], -1, "until")
    if not beams:
        return Sample("", -1, "dead_end")
    text, cut = _stop_cut(beams[0][1], opts.stops)
    return Sample(text, -1, "stop" if cut else "length")


def _stop_cut(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text up to the first stop string found in it (the earliest occurrence of any)."""
    found = [text.index(s) for s in stops if s in text]
    if found:
        return text[: min(found)], True
    return text, False
