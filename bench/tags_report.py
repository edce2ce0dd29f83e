"""The voices bench's figures against the issue's targets (pass/fail), and the docs' tables, from
the units done so far (bench/tags.py). A figure whose units are not all done is left out."""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from tags_corpora import wilson
from tags_units import Bench, train_key

from charrnn.training.voiced_batches import DEFAULT_BALANCE, DEFAULT_UNTAGGED_SHARE


def _key(b: Bench, corpus: str, budget: str, seed: int, voiced: bool, **kw) -> str:
    balance, share = kw.get("balance", DEFAULT_BALANCE), kw.get("share", DEFAULT_UNTAGGED_SHARE)
    return train_key(corpus, budget, seed, voiced, balance, share)


def top_run(b: Bench, corpus: str) -> str:
    """The run that samples, attribution and mixes read: voiced, longest budget, first seed."""
    return _key(b, corpus, b.scale.budgets[-1], b.scale.seeds[0], True)


def conditioning(b: Bench, corpus: str, budget: str) -> dict | None:
    """Per voice: mean validation nats/char over seeds voiced and unvoiced, the gain (unvoiced −
    voiced) and the seeds' spread (the larger seed-to-seed difference of the two)."""
    runs = {
        voiced: [b.store.result(_key(b, corpus, budget, s, voiced)) for s in b.scale.seeds]
        for voiced in (True, False)
    }
    if any(r is None for rs in runs.values() for r in rs):
        return None
    names = list(runs[True][0]["val_voices"])
    per_voice = {}
    for n in names:
        v = [r["val_voices"][n] for r in runs[True]]
        u = [r["val_voices"][n] for r in runs[False]]
        spread = max(max(v) - min(v), max(u) - min(u))
        gain = statistics.mean(u) - statistics.mean(v)
        per_voice[n] = {"voiced": statistics.mean(v), "unvoiced": statistics.mean(u)}
        per_voice[n] |= {"gain": gain, "spread": spread}
    by_seed = [
        statistics.mean(u["val_voices"][n] - v["val_voices"][n] for n in names)
        for v, u in zip(runs[True], runs[False], strict=True)
    ]
    return {
        "per_voice": per_voice,
        "mean_gain": statistics.mean(by_seed),
        "gain_by_seed": by_seed,
        "model": runs[True][0]["model"],
        "ok": all(p["gain"] >= -p["spread"] for p in per_voice.values()),
        "at_equal_steps": [
            _equal_steps(b, v, u) for v, u in zip(runs[True], runs[False], strict=True)
        ],
    }


def _evals(b: Bench, run: dict) -> dict[int, dict]:
    """A run's evaluations by step, from its metrics.jsonl (empty where the run is not here)."""
    path = b.work / Path(run["checkpoint"]).parent / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = (json.loads(x) for x in path.read_text().splitlines() if x.strip())
    return {r["step"]: r["val_voices"] for r in rows if "val_voices" in r}


def _equal_steps(b: Bench, voiced: dict, unvoiced: dict) -> dict | None:
    """The gain per voice at the last step both runs evaluated (the baseline trains its partner's
    cadence): the budget's figure less the machine's speed, which drifts between runs here."""
    v, u = _evals(b, voiced), _evals(b, unvoiced)
    common = sorted(set(v) & set(u))
    if not common:
        return None
    step = common[-1]
    gains = {n: u[step][n] - v[step][n] for n in v[step]}
    return {"step": step, "gains": gains, "mean_gain": statistics.mean(gains.values())}


def real_share(att: dict, length: int) -> tuple[float, int]:
    """The judge's accuracy on real test snippets of the length nearest `length`."""
    near = min(att, key=lambda n: abs(int(n) - length))
    return att[near]["classifier"] / att[near]["n"], int(near)


def _median(b: Bench, prefix: str) -> float | None:
    got = [r["result"]["chars_per_sec"] for k, r in b.store.done.items() if k.startswith(prefix)]
    return statistics.median(got) if len(got) == b.scale.reps else None


def figures(b: Bench) -> dict:
    """Every figure that can be computed, with `checks`: [figure, value, target, pass]."""
    s, res = b.scale, b.store.result
    checks: list[list] = []
    out: dict = {"checks": checks, "conditioning": {}, "samples": {}, "attribution": {}}

    def check(figure: str, value: str, target: str, ok: bool) -> None:
        checks.append([figure, value, target, bool(ok)])

    for corpus in s.caps:
        for budget in s.budgets:
            c = conditioning(b, corpus, budget)
            if c is None:
                continue
            out["conditioning"][f"{corpus}/{budget}"] = c
            worst = min(c["per_voice"].items(), key=lambda kv: kv[1]["gain"] + kv[1]["spread"])
            value = (
                f"mean gain {c['mean_gain']:+.4f} nats/char (seeds "
                + ", ".join(f"{g:+.4f}" for g in c["gain_by_seed"])
                + f"); closest voice {worst[0]}: gain {worst[1]['gain']:+.4f}, "
                f"spread {worst[1]['spread']:.4f}"
            )
            check(
                f"conditioning {corpus} {budget}", value, "gain >= -spread on every voice", c["ok"]
            )
        key = top_run(b, corpus)
        sam, att = res(f"samples/{key}"), res(f"attribution/{key}")
        if sam and att:
            v = len(sam["voices"])
            real, near = real_share(att, s.sample_len)
            out["samples"][corpus] = sam | {"real": real, "real_length": near}
            for strength, f in sam["by_strength"].items():
                value = f"{f['share']:.0%} in the asked voice, {f['nats_per_char']:.3f} nats/char"
                if corpus == "distinct":
                    target, ok = ">= 90%", f["share"] >= 0.9
                else:
                    target = f">= {2 / v:.0%} (2x chance) and >= {real:.0%} (real {near}-char)"
                    ok = f["share"] >= 2 / v and f["share"] >= real
                check(f"samples {corpus} strength {strength}", value, target, ok)
        if att:
            out["attribution"][corpus] = att
            for length, f in att.items():
                n, acc, nb = f["n"], f["charrnn"] / f["n"], f["classifier"] / f["n"]
                lo, hi = wilson(f["charrnn"], n)
                nlo, nhi = wilson(f["classifier"], n)
                value = (
                    f"{acc:.1%} [{lo:.1%}, {hi:.1%}] vs classifier {nb:.1%} [{nlo:.1%}, {nhi:.1%}]"
                )
                check(
                    f"score --by-tag {corpus} {length} chars (n={n})",
                    value,
                    ">= classifier - 2 pts",
                    acc >= nb - 0.02,
                )
        m = res(f"mix/{key}")
        if m:
            firsts = [m["shares"][str(w)]["first"] for w in s.mix_weights]
            out.setdefault("mix", {})[corpus] = m
            rising = all(a < b_ for a, b_ in itertools.pairwise(firsts))
            half = m["shares"].get("0.5", {}).get("first", -1)
            value = f"{m['pair'][0]} share " + " ".join(f"{x:.0%}" for x in firsts)
            check(
                f"mix {corpus} {'+'.join(m['pair'])}",
                value,
                "strictly rising; 25-75% at 0.5",
                rising and 0.25 <= half <= 0.75,
            )
    out["ablation"] = ablation(b)
    cost = {p: _median(b, f"cost/train/{p}/") for p in ("voiced", "unvoiced")}
    if None not in cost.values():
        ratio = cost["voiced"] / cost["unvoiced"]
        out["cost_train"] = cost | {"ratio": ratio}
        check(
            "training chars/s voiced / unvoiced",
            f"{ratio:.3f} ({cost['voiced']:.0f} / {cost['unvoiced']:.0f})",
            ">= 0.95",
            ratio >= 0.95,
        )
    for streams in s.cost_lengths:
        got = {v: _median(b, f"cost/sample/{streams}/{v}/") for v in ("unvoiced", "s1", "s2")}
        if None in got.values():
            continue
        r1, r2 = got["s1"] / got["unvoiced"], got["s2"] / got["unvoiced"]
        out.setdefault("cost_sample", {})[streams] = got | {"ratio_s1": r1, "ratio_s2": r2}
        check(
            f"sampling chars/s strength 1 / unvoiced, {streams} streams",
            f"{r1:.3f} (strength 2: {r2:.3f})",
            ">= 0.95",
            r1 >= 0.95,
        )
    return out


def ablation(b: Bench) -> dict:
    """Balance and untagged share on the close corpus: mean and per-voice validation, and what
    guidance buys (the judge's share in the asked voice by strength)."""
    s, out = b.scale, {}
    settings = [("balance", x, {"balance": x}) for x in s.balances]
    settings += [("untagged share", x, {"share": x}) for x in s.shares]
    for kind, x, kw in settings:
        key = _key(b, "close", s.ablation_budget, s.seeds[0], True, **kw)
        run, sam = b.store.result(key), b.store.result(f"samples/{key}")
        if run is None:
            continue
        row = {"mean_val": run["best_val_loss"], "val_voices": run["val_voices"]}
        if sam:
            row["share_by_strength"] = {k: f["share"] for k, f in sam["by_strength"].items()}
        out[f"{kind} {x}"] = row
    return out


def _shown(line: str) -> str:
    """A sample's line fit for a markdown code span: control characters and backticks replaced."""
    return "".join("·" if (c < " " and c != "\t") or c == "`" else c for c in line)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(b: Bench) -> str:
    """The tables for docs/training.md ("Voices"), sampling.md and scoring-and-viz.md."""
    f = figures(b)
    parts: list[str] = []
    add: Callable[[str], None] = parts.append
    add("## training.md: conditioning (per-voice validation nats/char, mean of seeds)\n")
    for name, c in f["conditioning"].items():
        rows = [
            [
                v,
                f"{p['voiced']:.4f}",
                f"{p['unvoiced']:.4f}",
                f"{p['gain']:+.4f}",
                f"{p['spread']:.4f}",
            ]
            for v, p in c["per_voice"].items()
        ]
        add(f"{name} ({c['model']}), mean gain {c['mean_gain']:+.4f}\n")
        add(_table(["voice", "voiced", "--no-condition", "gain", "seeds' spread"], rows) + "\n")
        for seed, e in zip(b.scale.seeds, c["at_equal_steps"], strict=True):
            if e is not None:
                gains = ", ".join(f"{n} {g:+.4f}" for n, g in e["gains"].items())
                add(f"- seed {seed} at step {e['step']}: mean {e['mean_gain']:+.4f} ({gains})")
        add("")
    if f["ablation"]:
        add("## training.md: balance and untagged share (close corpus, one seed)\n")
        rows = []
        for name, r in f["ablation"].items():
            shares = r.get("share_by_strength", {})
            rows.append(
                [
                    name,
                    f"{r['mean_val']:.4f}",
                    *[f"{shares.get(k, float('nan')):.0%}" for k in map(str, b.scale.strengths)],
                ]
            )
        add(
            _table(["setting", "mean val", *[f"in voice @{x}" for x in b.scale.strengths]], rows)
            + "\n"
        )
    if "cost_train" in f:
        c = f["cost_train"]
        add(
            f"Training chars/s, voiced {c['voiced']:.0f} vs unvoiced {c['unvoiced']:.0f} "
            f"(ratio {c['ratio']:.3f}, medians of {b.scale.reps})\n"
        )
    add("## sampling.md: strength (share of samples the 3-gram judge puts in the asked voice)\n")
    for corpus, sam in f["samples"].items():
        rows = [
            [k, f"{x['share']:.0%}", f"{x['nats_per_char']:.3f}"]
            for k, x in sam["by_strength"].items()
        ]
        add(
            f"{corpus}: real {sam['real_length']}-char test snippets judged right: {sam['real']:.0%}\n"
        )
        add(
            _table(["--tag-strength", "in the asked voice", "nats/char (plain voiced)"], rows)
            + "\n"
        )
        for voice, lines in sam["first_lines"].items():
            add(f"- `{voice}`: " + " / ".join(f"`{_shown(ln)}`" for ln in lines[0][:2]))
        add("")
    for corpus, m in f.get("mix", {}).items():
        rows = [[w, f"{x['first']:.0%}", f"{x['second']:.0%}"] for w, x in m["shares"].items()]
        add(f"{corpus} mix of {m['pair'][0]} and {m['pair'][1]} (weight of the first):\n")
        add(_table(["weight", f"judged {m['pair'][0]}", f"judged {m['pair'][1]}"], rows) + "\n")
        add("- at 0.5: " + " / ".join(f"`{_shown(ln)}`" for ln in m["first_lines"][:2]) + "\n")
    if f.get("cost_sample"):
        rows = [
            [
                str(n),
                f"{c['unvoiced']:.0f}",
                f"{c['s1']:.0f} ({c['ratio_s1']:.2f})",
                f"{c['s2']:.0f} ({c['ratio_s2']:.2f})",
            ]
            for n, c in f["cost_sample"].items()
        ]
        add(_table(["streams", "unvoiced chars/s", "strength 1", "strength 2"], rows) + "\n")
    add("## scoring-and-viz.md: attribution (accuracy on test snippets, 95 % Wilson interval)\n")
    rows = []
    for corpus, att in f["attribution"].items():
        for length, x in att.items():
            lo, hi = wilson(x["charrnn"], x["n"])
            nlo, nhi = wilson(x["classifier"], x["n"])
            lap = " (overlapping)" if x["overlap"] else ""
            rows.append(
                [
                    corpus,
                    length + lap,
                    str(x["n"]),
                    f"{x['charrnn'] / x['n']:.1%} [{lo:.1%}, {hi:.1%}]",
                    f"{x['classifier'] / x['n']:.1%} [{nlo:.1%}, {nhi:.1%}]",
                ]
            )
    add(_table(["corpus", "chars", "snippets", "score --by-tag", "3-gram naive Bayes"], rows))
    return "\n".join(parts)
