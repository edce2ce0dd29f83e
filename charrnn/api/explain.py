"""The plan in words: what it chose and why, what kept a larger shape out, and the options that
give the same run again without planning. The lines `charrnn train` shows before training and
`charrnn.plan` reports in its `Planned` event.

It decides nothing (the rules are `training.plan`'s and `training.sizing`'s) and prints nothing.
"""

from __future__ import annotations

from charrnn.model_config import ModelConfig
from charrnn.training.sizing import MAX_WEIGHTS_PER_CHAR, MIN_EPOCHS, MIN_STEPS


def limit_is_own(limit: dict, layers: int, hidden: int) -> bool:
    """Whether a plan's `limit` names the model's own shape: no shape met the rules, so the plan
    took the smallest (otherwise it names the next shape up)."""
    return limit["shape"] == f"{layers}x{hidden}"


def describe(record: dict, model: ModelConfig) -> list[str]:
    """The plan in two or three lines: what it chose and why (steps, epochs, speed), what kept a
    larger shape out (where one was passed over), and the options that give the same run again
    without planning."""
    est, inputs = record["estimate"], record["inputs"]
    speed = inputs.get("speed")
    why = ""
    if speed:
        readings = ", ".join(f"{k} {v:,.0f}" for k, v in speed["chars_per_sec"].items())
        how = {"measured": f"measured in {speed['seconds']:.1f} s", "cached": "measured earlier"}
        why = (
            f" ({speed['source']} chars/s: {readings}; {how.get(speed['source'], 'not measured')})"
        )
    steps = f"~{est['steps']:,} steps" if est.get("steps") else "no step limit"
    epochs = f", {est['epochs']:g} epochs" if est.get("epochs") is not None else ""
    rate = f" at ~{est['chars_per_sec']:,} chars/s" if est.get("chars_per_sec") else ""
    chosen = record["chosen"]
    same = {
        "layers": model.layers,
        "hidden": model.hidden,
        "dropout": model.dropout,
        "weight_drop": model.weight_drop,
        "eval_every": chosen["eval_every"],
        "warmup": chosen["warmup"],
    }
    shape = f"{model.layers}×{model.hidden} {model.cell}, "
    lines = [
        f"plan: {shape}dropout {model.dropout:g}, weight-drop {model.weight_drop:g}, evaluate every "
        f"{chosen['eval_every']} steps: {steps}{epochs}{rate}{why}"
    ]
    if limit := record.get("limit"):
        named = limit["shape"].replace("x", "×")
        lacks = _LACKS.get(limit["lacks"], f"lacks {limit['lacks']}")
        lines.append(
            f"no shape meets the rules: {named}, the smallest, {lacks}"
            if limit_is_own(limit, model.layers, model.hidden)
            else f"not larger: {named} {lacks}"
        )
    lines.append("same run without planning: " + " ".join(_option(k, v) for k, v in same.items()))
    return lines


# What the next larger shape lacked (`sizing.shortfall`), as the plan says it.
_LACKS = {
    "steps": f"would make under {MIN_STEPS:,} steps in this budget",
    "passes": f"would see the text under {MIN_EPOCHS:g} times in this budget",
    "weights": f"would have over {MAX_WEIGHTS_PER_CHAR:g} weights per character of this text "
    "(enough to learn it by heart)",
}


def _option(name: str, value: object) -> str:
    return (
        f"--{name.replace('_', '-')} {value:g}"
        if isinstance(value, float)
        else (f"--{name.replace('_', '-')} {value}")
    )
