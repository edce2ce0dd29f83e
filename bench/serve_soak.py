"""Serving soak: `charrnn serve --chat` with a 2×512 LSTM under a stated, bounded mix of ordinary and
heavy requests for --minutes (default 10), on 127.0.0.1, from one asyncio client process.

The mix (each client sends its next request when the last one ended):
- `stream`: 4 clients, streaming completions of 120 characters (the ordinary requests whose time to
  first character is measured);
- `chat`: 2 clients, each a chat session of streamed 60-character turns, a new session every 6 turns;
- `disconnect`: 1 client, streaming 2,000 characters and closing the connection after the first ones;
- `bad`: 1 client, a fixed list of bad bodies made from --seed (hand-written cases, then seeded
  mutations of valid bodies), over and over, 50 ms apart;
- heavy, from the second phase on: `score`, 2 clients, /v1/score of --score-chars characters (every
  other one with per-character records); `echo`, 1 client, echo + logprobs 5 over 4 prompts of 2,000
  characters with max_tokens 0.

The first tenth of the run has no heavy client; the rest has every client. Reported, each against its
target: requests by kind and status and no 5xx; p50/p99 time to first character of `stream` without
and with the heavy clients (p99 with <= p99 without + 50 ms); the server's longest wait between two
batch steps while a stream was live (/health's `longest_step_gap_ms`, without and with the heavy
clients); the server's RSS, read every second: at minute 2 (a fifth of the run, or later, once every
kind has ended a request) and at the end, both under the mix's load, each reading alone and the
highest reading of the minute (a tenth of the run, if shorter) before each; the target is on those
highest readings (grown by 10 % at most), since one reading depends on which long requests happen to
be in flight at that instant. One request of each route warms the server up before the clock
starts. The model is trained for two small steps: its speed, not its text, matters. The corpus is
this Python's own standard library, so the bench needs nothing outside the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from serve_load import _percentile, _serve

STREAM, CHAT, DISCONNECT, BAD, SCORE, ECHO = "stream", "chat", "disconnect", "bad", "score", "echo"
CLIENTS = {STREAM: 4, CHAT: 2, DISCONNECT: 1, BAD: 1, SCORE: 2, ECHO: 1}
HEAVY = (SCORE, ECHO)
TARGETS = {"no_5xx": 0, "ttfc_p99_extra_ms": 50, "rss_growth_pct": 10}
END_GRACE = 120.0  # seconds the requests running at the end may take to finish


def say(line: str) -> None:
    print(f"serve_soak: {line}", file=sys.stderr, flush=True)


# --- the model and its text ------------------------------------------------------------------------
def corpus(chars: int = 300_000) -> str:
    """ASCII Python source from this Python's json, email and asyncio packages."""
    root = Path(sysconfig.get_path("stdlib"))
    files = [
        f for name in ("json", "email", "asyncio") for f in sorted((root / name).rglob("*.py"))
    ]
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    return "".join(c for c in text if c.isascii())[:chars]


def checkpoint(tmp: Path, text: str, layers: int, hidden: int) -> Path:
    """A LSTM of the given shape after two small training steps on `text`: serving speed is the
    shape's, whatever the weights, so the steps are as cheap as `train` allows."""
    (tmp / "corpus.txt").write_text(text, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "charrnn", "train", str(tmp / "corpus.txt"), "--layers", str(layers),
         "--hidden", str(hidden), "--max-steps", "2", "--eval-every", "2", "--eval-chars", "2000",
         "--batch-size", "8", "--seq-len", "50", "--no-calibrate", "--out", str(tmp / "run")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return tmp / "run" / "best.ckpt"


def bad_bodies(seed: int) -> list[tuple[str, bytes]]:
    """(path, body) pairs no server should answer with a 5xx: hand-written cases, then mutations of
    valid bodies drawn from `seed` (the same list on every run with that seed)."""
    C, H, S = "/v1/completions", "/v1/chat/completions", "/v1/score"
    raw = [(C, b"{"), (C, b"[]"), (C, b"\xff\xfe"), (H, b'{"messages": '), (S, b"null")]
    cases: list[tuple[str, object]] = [
        (C, {"prompt": 5}), (C, {"prompt": "x", "max_tokens": -1}),
        (C, {"prompt": "x", "temperature": "hot"}), (C, {"prompt": "x", "n": 10**6}),
        (C, {"prompt": "x", "logit_bias": {"9" * 5000: 1}}), (C, {"prompt": "x", "stop": ["a"] * 100}),
        (C, {"prompt": "x", "seed": 1.5}), (C, {"prompt": "x", "max_tokens": 10**12}),
        (C, {"prompt": [[-1]]}), (C, {"model": "nope", "prompt": "x"}), (C, {"prompt": "x", "nope": 1}),
        (C, {"prompt": "x", "session": "../x" * 300}), (H, {"messages": "hi"}),
        (H, {"messages": [{"role": "wizard", "content": "x"}]}), (H, {"messages": []}),
        (S, {"text": 7}), (S, {"text": "x", "top_k": -3}), (S, {"text": "x", "per_char": "yes"}),
    ]  # fmt: skip
    valid: list[tuple[str, dict]] = [
        (C, {"prompt": "def ", "max_tokens": 5, "temperature": 0.8, "seed": 1, "stream": True}),
        (H, {"messages": [{"role": "user", "content": "import os"}], "max_tokens": 5}),
        (S, {"text": "import os\n", "per_char": True, "top_k": 3}),
    ]
    odd = [None, -1, 0, "", [], {}, 1e308, -1e308, True, "x" * 10_000, [None], {"": None}, 2**64]
    rng = random.Random(seed)
    for _ in range(40):
        path, body = rng.choice(valid)
        body = dict(body)
        body[rng.choice([*body, "logprobs", "n", "stop", "logit_bias", "echo"])] = rng.choice(odd)
        cases.append((path, body))
    return raw + [(p, json.dumps(b).encode()) for p, b in cases]


# --- the clients -----------------------------------------------------------------------------------
class Soak:
    def __init__(self, url: str, text: str, seconds: float, score_chars: int, seed: int) -> None:
        self.url, self.text, self.score_chars, self.seconds = url, text, score_chars, seconds
        self.t0 = self.end = 0.0  # set by `start`, after the warm-up
        self.heavy = asyncio.Event()
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.ttfc: dict[str, list[float]] = {"without_heavy": [], "with_heavy": []}
        self.bodies = bad_bodies(seed)
        self.rng = random.Random(seed)
        self.history: dict[int, list[dict]] = {}  # each chat client's conversation
        self.unfinished = 0  # requests cancelled after the end's grace

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.end = self.t0 + self.seconds

    async def warm_up(self, client) -> None:
        """One request of each route before the clock starts (imports, thread pools, BLAS)."""
        body = {"prompt": "def ", "max_tokens": 20, "stream": True}
        await self._sse(client, "/v1/completions", body)
        body = {"messages": [{"role": "user", "content": "import os"}], "max_tokens": 20}
        await client.post(self.url + "/v1/chat/completions", json=body)
        await client.post(self.url + "/v1/score", json={"text": self.snippet(500)})

    def snippet(self, n: int) -> str:
        i = self.rng.randrange(len(self.text) - n)
        return self.text[i : i + n]

    async def loop(self, client, kind: str, i: int) -> None:
        if kind in HEAVY:
            await self.heavy.wait()
        n = 0
        while time.monotonic() < self.end:
            try:
                status = await getattr(self, kind)(client, i, n)
            except Exception as e:  # the server stopped answering: counted, never hidden
                status = f"error {type(e).__name__}"
                await asyncio.sleep(0.1)
            self.statuses[kind][str(status)] += 1
            n += 1

    async def _sse(
        self, client, path: str, body: dict, first=None, stop_after: int = 0, text=None
    ) -> str:
        """Stream a request; `first(seconds)` at its first character; close after `stop_after`
        characters; the text received goes into the list `text`."""
        t = time.monotonic()
        got = 0
        async with client.stream("POST", self.url + path, json=body) as r:
            if r.status_code != 200:
                await r.aread()
                return str(r.status_code)
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return "200 error event"
                for c in event.get("choices", []):
                    piece = c.get("text") or c.get("delta", {}).get("content") or ""
                    if piece and not got and first is not None:
                        first(time.monotonic() - t)
                    got += len(piece)
                    if text is not None:
                        text.append(piece)
                if stop_after and got >= stop_after:
                    return "200 disconnected"
        return "200"

    async def stream(self, client, i: int, n: int) -> str:
        phase = "with_heavy" if self.heavy.is_set() else "without_heavy"
        body = {"prompt": self.snippet(40), "max_tokens": 120, "temperature": 0.8,
                "seed": 1000 * i + n, "stream": True}  # fmt: skip
        return await self._sse(client, "/v1/completions", body, self.ttfc[phase].append)

    async def chat(self, client, i: int, n: int) -> str:
        if n % 6 == 0:
            self.history[i] = []
        messages = self.history[i]
        messages.append({"role": "user", "content": self.snippet(30)})
        body = {"messages": messages, "max_tokens": 60, "seed": n, "stream": True,
                "session": f"soak-{i}-{n // 6}"}  # fmt: skip
        reply: list[str] = []
        status = await self._sse(client, "/v1/chat/completions", body, text=reply)
        messages.append({"role": "assistant", "content": "".join(reply)})
        return status

    async def disconnect(self, client, i: int, n: int) -> str:
        body = {"prompt": self.snippet(40), "max_tokens": 2000, "seed": n, "stream": True}
        return await self._sse(client, "/v1/completions", body, stop_after=self.rng.randint(1, 200))

    async def bad(self, client, i: int, n: int) -> int:
        path, body = self.bodies[n % len(self.bodies)]
        await asyncio.sleep(0.05)
        headers = {"content-type": "application/json"}
        return (await client.post(self.url + path, content=body, headers=headers)).status_code

    async def score(self, client, i: int, n: int) -> int:
        body = {"text": self.snippet(self.score_chars), "per_char": n % 2 == 1}
        return (await client.post(self.url + "/v1/score", json=body)).status_code

    async def echo(self, client, i: int, n: int) -> int:
        body = {"prompt": [self.snippet(2000) for _ in range(4)], "echo": True, "logprobs": 5,
                "max_tokens": 0}  # fmt: skip
        return (await client.post(self.url + "/v1/completions", json=body)).status_code


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def run(soak: Soak, pid: int, seconds: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=sum(CLIENTS.values()) + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await soak.warm_up(client)
        soak.start()
        series: list[tuple[float, float]] = []  # (seconds since the start, RSS MB), every second
        sampler = asyncio.create_task(sample_rss(pid, soak.t0, series))
        loops = [
            asyncio.create_task(soak.loop(client, kind, i))
            for kind, count in CLIENTS.items()
            for i in range(count)
        ]
        await asyncio.sleep(seconds / 10)
        gap_without = (await client.get(soak.url + "/health")).json()["longest_step_gap_ms"]
        soak.heavy.set()
        say(f"heavy clients on after {seconds / 10:.0f} s")
        await asyncio.sleep(max(0.0, soak.t0 + seconds / 5 - time.monotonic()))
        while any(not soak.statuses[k] for k in CLIENTS) and time.monotonic() < soak.end:
            await asyncio.sleep(0.5)  # the reference RSS is read once every kind has run
        rss_at = (time.monotonic() - soak.t0) / 60
        rss_ref = rss_mb(pid)
        await asyncio.sleep(max(0.0, soak.end - time.monotonic()))
        rss_end = rss_mb(pid)  # at the end, under the same load as the reference
        _, late = await asyncio.wait(loops, timeout=max(END_GRACE, seconds / 10))
        for task in late:  # a request still running long after the end: left, and counted
            task.cancel()
        soak.unfinished = len(late)
        gap_all = (await client.get(soak.url + "/health")).json()["longest_step_gap_ms"]
        sampler.cancel()
    window = min(60.0, seconds / 10)
    peaks = (
        max(mb for t, mb in series if 60 * rss_at - window <= t <= 60 * rss_at),
        max(mb for t, mb in series if seconds - window <= t <= seconds),
    )
    return {
        "rss": (rss_at, rss_ref, rss_end),
        "peaks": (window, *peaks),
        "gap": (gap_without, gap_all),
    }


async def sample_rss(pid: int, t0: float, series: list[tuple[float, float]]) -> None:
    """The server's RSS every second: one reading depends on which long requests are in flight at
    that instant (a 50,000-character score holds tens of MB while it runs), so growth is judged on
    the highest reading of a window, when the same mix of requests has surely been in flight."""
    while True:
        series.append((time.monotonic() - t0, rss_mb(pid)))
        await asyncio.sleep(1.0)


def figures(soak: Soak, got: dict, minutes: float) -> dict:
    requests = {k: dict(sorted(soak.statuses[k].items())) for k in CLIENTS}
    counts = [(k, c) for s in soak.statuses.values() for k, c in s.items()]
    fives = sum(c for k, c in counts if k.startswith("5"))
    transport = sum(c for k, c in counts if k.startswith("error"))
    events = sum(c for k, c in counts if k.endswith("error event"))
    ttfc = {
        phase: {"n": len(xs), "p50_ms": round(1000 * _percentile(xs, 50), 1) if xs else None,
                "p99_ms": round(1000 * _percentile(xs, 99), 1) if xs else None}
        for phase, xs in soak.ttfc.items()
    }  # fmt: skip
    without, with_ = ttfc["without_heavy"]["p99_ms"], ttfc["with_heavy"]["p99_ms"]
    at, ref, end = got["rss"]
    window, peak_ref, peak_end = got["peaks"]
    growth = 100 * (peak_end - peak_ref) / peak_ref
    return {
        "minutes": minutes,
        "clients": CLIENTS,
        "requests": requests,
        "every_kind_ran": all(soak.statuses[k] for k in CLIENTS),
        "unfinished_at_end": soak.unfinished,
        "no_5xx": {"5xx": fives, "transport_errors": transport, "error_events": events,
                   "pass": fives + transport == TARGETS["no_5xx"]},
        "ttfc": {**ttfc, "target": "p99 with heavy <= p99 without + 50 ms",
                 "pass": None if None in (without, with_) else with_ <= without + 50},
        "longest_step_gap_ms": {"without_heavy": got["gap"][0], "with_heavy": got["gap"][1]},
        "rss_mb": {"reference_at_minute": round(at, 2), "reference": round(ref, 1),
                   "end": round(end, 1), "window_s": window,
                   "peak_before_reference": round(peak_ref, 1), "peak_last_window": round(peak_end, 1),
                   "growth_pct": round(growth, 1),
                   "target": "the highest reading of the last window is at most 10 % above that "
                             "of the window before the reference",
                   "pass": growth <= TARGETS["rss_growth_pct"]},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--score-chars", type=int, default=50_000, help="characters per /v1/score")
    ap.add_argument("--seed", type=int, default=0, help="draws the bad bodies and the texts")
    ap.add_argument("--no-record", action="store_true", help="print, without bench/results.jsonl")
    args = ap.parse_args()
    seconds = 60 * args.minutes
    text = corpus()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ckpt = checkpoint(tmp, text, args.layers, args.hidden)
        proc, url = _serve(ckpt, tmp, False, ["--chat"])
        say(f"serving a {args.layers}x{args.hidden} LSTM at {url} for {seconds:.0f} s")
        try:
            soak = Soak(url, text, seconds, args.score_chars, args.seed)
            got = asyncio.run(run(soak, proc.pid, seconds))
        finally:
            proc.terminate()
            proc.wait(60)
    out = {"model": f"lstm {args.layers}x{args.hidden}", **figures(soak, got, args.minutes)}
    if args.no_record:
        print(json.dumps(out))
    else:
        from common import report

        report("serve_soak", out)


if __name__ == "__main__":
    main()
