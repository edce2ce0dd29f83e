"""`--format web`: the files of a page that generates text with no server, from `file://` or any
static host.

A folder holds `index.html` (the demo page), `charrnn.js` (the engine: classic script and Node) and
`charrnn.mjs` (the same as an ES module), the weights twice (`model.js`, base64 in a script that
registers them, for `file://` where nothing may be fetched; `model.bin` with `model.json` for hosted
pages), and `export.json` (what was exported, and the dtype's measured cost). `--single-file` puts
the page, the engine and the weights into one HTML file. It writes bytes it is given; choosing the
weights and measuring them is `export`'s job.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources

from charrnn.infer.export.weights import Packed

ENGINE_FILE, MODULE_FILE, PAGE_FILE = "charrnn.js", "charrnn.mjs", "index.html"
WEIGHTS_JS, WEIGHTS_BIN, MANIFEST = "model.js", "model.bin", "model.json"
FORMAT = "charrnn-web"


def asset(name: str) -> str:
    return resources.files("charrnn.infer.export").joinpath("assets", name).read_text("utf-8")


def engine_js() -> str:
    return asset(ENGINE_FILE)


def module_js() -> str:
    """The engine as an ES module: the same code (it sets globalThis.charrnn where there is no
    CommonJS `module`), re-exported."""
    return (
        engine_js()
        + "\nconst api = globalThis.charrnn;\nexport const CharRNN = api.CharRNN;\nexport default api;\n"
    )


def script_json(obj: object) -> str:
    """JSON safe inside a <script> element (no `</script>` or `<!--` can be formed)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace(
        "<", "\\u003c"
    )


def weights_js(name: str, manifest: dict, packed: Packed) -> str:
    """A script that registers the model as globalThis.charrnnModels[name] (no fetch needed)."""
    data = base64.b64encode(packed.data).decode()
    return (
        "(function (g) {\n"
        f"  (g.charrnnModels = g.charrnnModels || {{}})[{script_json(name)}] = {{\n"
        f"    manifest: {script_json(manifest)},\n"
        f'    data: "{data}"\n'
        "  };\n"
        '})(typeof globalThis !== "undefined" ? globalThis : this);\n'
    )


def page(name: str, scripts: str) -> str:
    """index.html with its scripts; the model's name rides on <html data-model>."""
    text = asset("page.html").replace(
        '<html lang="en">', f'<html lang="en" data-model="{html.escape(name, quote=True)}">', 1
    )
    return text.replace("{{scripts}}", scripts, 1)


def files(name: str, manifest: dict, packed: Packed, single_file: bool) -> dict[str, bytes]:
    """Relative path → contents of everything the export writes."""
    registered = weights_js(name, manifest, packed)
    if single_file:
        inline = f"<script>\n{_inline(engine_js())}</script>\n<script>\n{registered}</script>"
        return {"": page(name, inline).encode()}
    linked = f'<script src="{ENGINE_FILE}"></script>'
    return {
        PAGE_FILE: page(name, linked).encode(),
        ENGINE_FILE: engine_js().encode(),
        MODULE_FILE: module_js().encode(),
        WEIGHTS_JS: registered.encode(),
        WEIGHTS_BIN: packed.data,
        MANIFEST: (
            json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        ).encode(),
    }


def _inline(js: str) -> str:
    if "</script" in js.lower():
        raise ValueError("charrnn.js must not contain '</script'")
    return js


def manifest_for(meta: dict, packed: Packed) -> dict:
    """model.json: the export's metadata plus where each tensor lies in model.bin."""
    return {
        **meta,
        "format": FORMAT,
        "weights": {"file": WEIGHTS_BIN, "bytes": len(packed.data)},
        "tensors": packed.tensors,
    }
