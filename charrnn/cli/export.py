"""`charrnn export`: a trained model as a web page (no server), an ONNX model, ml5's old charRNN
files, or a folder for the Hugging Face Hub (model, card, page) or a static Space. A thin shell
over `charrnn.infer.export`: what was written and the dtype's measured cost go to stderr (`--json`:
one object on stdout). No torch."""

from __future__ import annotations

from typing import Annotated

import typer

from charrnn.cli.common import CheckpointArg, find_checkpoint, print_json, read_text, size_text
from charrnn.cli.console import console

HUB = "Hugging Face Hub (--format hub, space)"


def export(
    checkpoint: CheckpointArg = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="web: a page and a JavaScript engine (no server needed); onnx: an ONNX model; "
            "ml5: the files ml5.js 0.12's charRNN reads (a 2-layer LSTM); hub: a Hugging Face "
            "model folder (sampling checkpoint, config.json, model card, web/); space: the page "
            "as a static Hugging Face Space.",
        ),
    ] = "web",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write \\[exports/<model>-<format>, .html with --single-file].",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Weights: web int8 (default), f16, f32; onnx f32 (default), int8; ml5 f32.",
            show_default=False,
        ),
    ] = None,
    single_file: Annotated[
        bool, typer.Option("--single-file", help="web: one HTML file with everything inside.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export at the same path.")
    ] = False,
    eval_file: Annotated[
        str | None,
        typer.Option(
            "--eval",
            metavar="FILE",
            help="Measure the dtype's cost on this text \\[the checkpoint's validation text].",
            show_default=False,
        ),
    ] = None,
    no_eval: Annotated[
        bool, typer.Option("--no-eval", help="Do not measure the dtype's cost.")
    ] = False,
    license: Annotated[
        str | None,
        typer.Option(
            help="hub/space: the model's licence, an SPDX id such as mit \\[unknown].",
            rich_help_panel=HUB,
            show_default=False,
        ),
    ] = None,
    language: Annotated[
        list[str] | None,
        typer.Option(
            help="hub: the text's language code, e.g. en (repeatable).",
            rich_help_panel=HUB,
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="OWNER/NAME",
            help="hub: the training text as a Hub dataset id.",
            rich_help_panel=HUB,
            show_default=False,
        ),
    ] = None,
    text_source: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="hub: where the training text came from \\[unknown].",
            rich_help_panel=HUB,
            show_default=False,
        ),
    ] = None,
    text_license: Annotated[
        str | None,
        typer.Option(
            metavar="SPDX",
            help="hub: the training text's licence \\[unknown].",
            rich_help_panel=HUB,
            show_default=False,
        ),
    ] = None,
    no_samples: Annotated[
        bool,
        typer.Option("--no-samples", help="hub: no samples in the card.", rich_help_panel=HUB),
    ] = False,
    no_web: Annotated[
        bool, typer.Option("--no-web", help="hub: no web/ page.", rich_help_panel=HUB)
    ] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="NAME[=W]",
            help="A voiced model's voice (repeat for a mix): the page's initial voice; ml5 bakes "
            "it into the weights (ml5 needs one).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout: files, sizes, cost.")
    ] = False,
) -> None:
    """Export a model to run elsewhere: in any web page with no server (web), in ONNX runtimes."""
    from charrnn.infer.export import export as run_export
    from charrnn.infer.export.hub import HubOptions
    from charrnn.infer.export.quality import EVAL_CHARS, WARN_COST, EvalText
    from charrnn.infer.voices import parse_tags

    text = None
    if eval_file is not None and not no_eval:
        text = EvalText(read_text(eval_file)[:EVAL_CHARS], eval_file)
    done = run_export(
        find_checkpoint(checkpoint),
        fmt,
        output,
        dtype,
        single_file,
        overwrite,
        eval_text=text,
        evaluate=not no_eval,
        hub_options=HubOptions(
            license,
            tuple(language or ()),
            dataset,
            text_source,
            text_license,
            samples=not no_samples,
            web=not no_web,
        ),
        tag=parse_tags(tag) if tag else None,
    )
    for note in done.notes:
        console.print(f"warning: {note}", highlight=False, markup=False)
    if as_json:
        print_json(done.to_json())
        return
    for path, size in done.files.items():
        console.print(f"wrote {path} ({size_text(size)})", highlight=False, markup=False)
    q = done.quality
    if q is None:
        console.print("quality: not measured (--no-eval)", highlight=False, markup=False)
    elif q["cost"] is None:
        console.print(f"quality: {q['method']}", highlight=False, markup=False)
    else:
        console.print(
            f"quality: {q['dtype']} {q['nats_per_char']:.4f} nats/char vs f32 {q['f32']:.4f} "
            f"(cost {q['cost']:+.4f}) on {q['chars']:,} characters",
            highlight=False,
            markup=False,
        )
        if q["cost"] > WARN_COST:
            console.print(
                f"warning: {q['dtype']} costs {q['cost']:.4f} nats/char (> {WARN_COST}); "
                "consider --dtype f32",
                highlight=False,
                markup=False,
            )
    for hint in done.hints:
        console.print(f"note: {hint}", highlight=False, markup=False)
    if done.format == "hub":
        console.print(
            f"upload with: hf upload OWNER/NAME {done.path} (after hf auth login)",
            highlight=False,
            markup=False,
        )
    if done.format == "space":
        console.print(
            f"upload with: hf upload OWNER/NAME {done.path} --repo-type space",
            highlight=False,
            markup=False,
        )
    if done.format == "web":
        page = done.path if done.path.suffix == ".html" else done.path / "index.html"
        console.print(f"open {page} in a browser", highlight=False, markup=False)
