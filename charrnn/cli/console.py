"""What the commands show on the terminal besides a run's progress: error and warning lines and the
`inspect` view. The stderr console and the training handler are `charrnn.render`'s (re-exported here).

Generated text never passes through here (Rich would wrap it and render markup); the CLI writes it to
stdout itself. Colour follows Rich's own rules, so NO_COLOR and non-TTY output stay plain.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from charrnn.api.explain import limit_is_own
from charrnn.render import Terminal, console, duration

__all__ = [
    "Terminal",
    "console",
    "duration",
    "error",
    "limit_is_own",
    "render_inspect",
    "warning",
]

_BLOCKS = "▁▂▃▄▅▆▇█"


def error(console: Console, message: str) -> None:
    console.print(f"[bold red]charrnn: error:[/] {escape(message)}", soft_wrap=True)


def warning(console: Console, message: str) -> None:
    console.print(f"[yellow]charrnn: warning:[/] {escape(message)}", soft_wrap=True)


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


class _Facts(Table):
    """inspect's two-column table: bold section titles, indented key-value rows."""

    def __init__(self) -> None:
        super().__init__(show_header=False, box=None, pad_edge=False)
        self.add_column(style="bold cyan", no_wrap=True)
        self.add_column()

    def section(self, title: str) -> None:
        self.add_row(f"[bold]{title}[/]", "")

    def row(self, k: str, val: object) -> None:
        self.add_row(f"  {k}", escape(str(val)))


def render_inspect(console: Console, info: dict, show_vocab: bool = False) -> None:
    """The human view of `inspect`: what the file is, the model, data, training and loss curve."""
    m, v, c, t = info["model"], info["vocab"], info["corpus"], info["training"]
    table = _Facts()
    section, row = table.section, table.row
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
    if info.get("voices"):
        _voice_rows(table, info["voices"], m.get("voice_dim"))
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


def _voice_rows(table: _Facts, voices: dict, dim: object) -> None:
    """A row per voice: its characters per split and its latest validation nats/char."""
    table.section(f"voices ({len(voices['names'])}, embedding {dim})")
    chars, val = voices.get("chars") or {}, voices.get("val") or {}
    for i, name in enumerate(voices["names"]):
        sizes = [
            f"{split} {chars[split][i]:,}"
            for split in ("train", "val", "test")
            if isinstance(chars.get(split), list) and i < len(chars[split])
        ]
        line = ", ".join(sizes) + " chars" if sizes else "sizes not recorded"
        if isinstance(val.get(name), int | float):
            line += f"; val {val[name]:.4f} nats/char"
        table.row(name, line)
    if voices.get("balance") is not None:
        share = voices.get("untagged_share")
        untagged = f"; {share:.0%} of windows trained untagged" if share is not None else ""
        table.row("balance", f"{voices['balance']}{untagged}")


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
