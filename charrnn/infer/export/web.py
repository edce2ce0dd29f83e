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
import re
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
    """JSON safe inside a <script> element and in any JavaScript parser: no `</script>` or `<!--`
    can be formed, U+2028/U+2029 (line breaks to JavaScript before ES2019) are escaped, and a
    non-finite number is an error (no JSON parser reads NaN)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def weights_js(name: str, manifest: dict, packed: Packed) -> str:
    """A script that registers the model as globalThis.charrnnModels[name] (no fetch needed). The
    registry is a null-prototype object and the entry an own property, so any name registers,
    `__proto__` included, even in a registry an older model.js made as a plain object."""
    data = base64.b64encode(packed.data).decode()
    return (
        "(function (g) {\n"
        "  var r = g.charrnnModels || (g.charrnnModels = Object.create(null));\n"
        f"  Object.defineProperty(r, {script_json(name)}, {{\n"
        "    enumerable: true, configurable: true, writable: true,\n"
        "    value: {\n"
        f"      manifest: {script_json(manifest)},\n"
        f'      data: "{data}"\n'
        "    }\n"
        "  });\n"
        '})(typeof globalThis !== "undefined" ? globalThis : this);\n'
    )


def attribute(text: str) -> str:
    """Text as a double-quoted HTML attribute value that reads back exactly: markup characters
    escaped, and a carriage return as a reference (HTML turns a raw one into a newline)."""
    return html.escape(text, quote=True).replace("\r", "&#13;")


def fill(template: str, values: dict[str, str]) -> str:
    """Each {{key}} of the template replaced by its value in one pass: a value is never read for
    placeholders itself (a model named `{{scripts}}` stays a name)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def page(name: str, scripts: str) -> str:
    """index.html with its scripts; the model's name rides on <html data-model>."""
    return fill(asset("page.html"), {"model": attribute(name), "scripts": scripts})


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
