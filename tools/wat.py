"""A small WebAssembly text → binary encoder for the web engine's kernel (matvec.wat), so the bytes
inlined in charrnn.js come from source kept in the repository, with no third-party toolchain.

    python tools/wat.py                # print the kernel's bytes as base64
    python tools/wat.py --write        # put them into charrnn.js (between the KERNEL markers)
    python tools/wat.py --check        # exit 1 if charrnn.js holds other bytes

It encodes only what the kernel uses: one imported memory, functions with named params and locals
(i32, f32, v128), exports, flat (unfolded) instructions among the ones in OPS and SIMD below,
block/loop with labels, and memory arguments `offset=`/`align=`. Anything else is an error, never
guessed at. The spec's binary format: https://webassembly.github.io/spec/core/binary/
"""

from __future__ import annotations

import argparse
import base64
import re
import struct
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "charrnn" / "infer" / "export" / "assets"
WAT, JS = ASSETS / "matvec.wat", ASSETS / "charrnn.js"
MARKER = re.compile(r'(/\*KERNEL\*/")([A-Za-z0-9+/=]*)(")')

TYPES = {"i32": 0x7F, "i64": 0x7E, "f32": 0x7D, "f64": 0x7C, "v128": 0x7B}
# Plain opcodes: name → (opcode, immediate kind). Natural alignment (log2 bytes) for memory ops.
OPS: dict[str, tuple[int, str]] = {
    "local.get": (0x20, "local"),
    "local.set": (0x21, "local"),
    "local.tee": (0x22, "local"),
    "i32.const": (0x41, "i32"),
    "f32.const": (0x43, "f32"),
    "i32.eqz": (0x45, ""),
    "i32.lt_u": (0x49, ""),
    "i32.add": (0x6A, ""),
    "i32.shl": (0x74, ""),
    "f32.add": (0x92, ""),
    "f32.store": (0x38, "mem2"),
    "br_if": (0x0D, "label"),
}
SIMD: dict[str, tuple[int, str]] = {
    "v128.load": (0x00, "mem4"),
    "f32x4.splat": (0x13, ""),
    "f32x4.extract_lane": (0x1F, "lane"),
    "f32x4.add": (0xE4, ""),
    "f32x4.mul": (0xE6, ""),
}


class WatError(ValueError):
    pass


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def name(s: str) -> bytes:
    data = s.encode()
    return uleb(len(data)) + data


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + uleb(len(body)) + body


def parse(text: str) -> list:
    """S-expressions → nested lists of atoms (strings keep their quotes)."""
    text = re.sub(r";;[^\n]*", "", text)
    tokens = re.findall(r'\(|\)|"[^"]*"|[^\s()]+', text)
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) < 2:
                raise WatError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise WatError("unbalanced '('")
    return stack[0]


def encode(text: str) -> bytes:
    """The binary module of a WebAssembly text module in the subset described above."""
    (module,) = parse(text)
    if module[0] != "module":
        raise WatError("expected (module ...)")
    types: list[bytes] = []
    imports: list[bytes] = []
    funcs: list[bytes] = []
    exports: list[bytes] = []
    codes: list[bytes] = []
    for field in module[1:]:
        kind = field[0]
        if kind == "import":
            imports.append(_import(field))
        elif kind == "func":
            sig, export, code = _func(field)
            if sig not in types:
                types.append(sig)
            funcs.append(uleb(types.index(sig)))
            if export:
                exports.append(name(export) + b"\x00" + uleb(len(codes)))
            codes.append(code)
        else:
            raise WatError(f"unsupported module field {kind!r}")
    out = b"\x00asm" + struct.pack("<I", 1)
    out += section(1, vec(types)) + section(2, vec(imports)) + section(3, vec(funcs))
    out += section(7, vec(exports)) + section(10, vec([uleb(len(c)) + c for c in codes]))
    return out


def _import(field: list) -> bytes:
    module, field_name, desc = field[1], field[2], field[3]
    if desc[0] != "memory":
        raise WatError("only an imported memory is supported")
    limits = [int(x) for x in desc[1:]]
    flag = b"\x00" if len(limits) == 1 else b"\x01"
    lim = flag + b"".join(uleb(n) for n in limits)
    return name(module.strip('"')) + name(field_name.strip('"')) + b"\x02" + lim


def _func(field: list) -> tuple[bytes, str | None, bytes]:
    """(signature, export name, code entry) of a (func ...) field."""
    params: list[tuple[str, str]] = []
    results: list[str] = []
    local_decls: list[tuple[str, str]] = []
    export = None
    body: list[str] = []
    for item in field[1:]:
        if isinstance(item, list):
            head = item[0]
            if head == "export":
                export = item[1].strip('"')
            elif head == "param":
                params.append((item[1], item[2]))
            elif head == "local":
                local_decls.append((item[1], item[2]))
            elif head == "result":
                results.extend(item[1:])
            else:
                raise WatError(f"folded instructions are not supported: ({head} ...)")
        elif item.startswith("$") and not body and not params:
            continue  # the function's own name
        else:
            body.append(item)
    sig = b"\x60" + vec([bytes([TYPES[t]]) for _, t in params])
    sig += vec([bytes([TYPES[t]]) for t in results])
    names = [n for n, _ in params] + [n for n, _ in local_decls]
    groups: list[tuple[int, str]] = []
    for _, t in local_decls:
        if groups and groups[-1][1] == t:
            groups[-1] = (groups[-1][0] + 1, t)
        else:
            groups.append((1, t))
    locals_bytes = vec([uleb(n) + bytes([TYPES[t]]) for n, t in groups])
    return sig, export, locals_bytes + _instructions(body, names) + b"\x0b"


def _instructions(tokens: list[str], locals_: list[str]) -> bytes:
    out = bytearray()
    labels: list[str] = []
    i = 0
    while i < len(tokens):
        op = tokens[i]
        i += 1
        if op in ("block", "loop"):
            label = tokens[i] if i < len(tokens) and tokens[i].startswith("$") else ""
            i += bool(label)
            labels.append(label)
            out += bytes([0x02 if op == "block" else 0x03, 0x40])
            continue
        if op == "end":
            if not labels:
                raise WatError("'end' without a block")
            labels.pop()
            out.append(0x0B)
            continue
        if op in SIMD:
            code, imm = SIMD[op]
            out += b"\xfd" + uleb(code)
        elif op in OPS:
            code, imm = OPS[op]
            out.append(code)
        else:
            raise WatError(f"unsupported instruction {op!r}")
        if imm == "local":
            out += uleb(_index(tokens[i], locals_))
            i += 1
        elif imm == "label":
            target = tokens[i]
            i += 1
            out += uleb(_depth(labels, target))
        elif imm == "i32":
            out += sleb(int(tokens[i], 0))
            i += 1
        elif imm == "f32":
            out += struct.pack("<f", float(tokens[i]))
            i += 1
        elif imm == "lane":
            out.append(int(tokens[i]))
            i += 1
        elif imm.startswith("mem"):
            align, offset = int(imm[3:]), 0
            while i < len(tokens) and tokens[i].startswith(("offset=", "align=")):
                key, value = tokens[i].split("=")
                if key == "offset":
                    offset = int(value, 0)
                else:
                    align = int(value).bit_length() - 1
                i += 1
            out += uleb(align) + uleb(offset)
    if labels:
        raise WatError("a block is not closed")
    return bytes(out)


def _depth(labels: list[str], target: str) -> int:
    """Branch depth: 0 is the innermost enclosing block."""
    for depth, label in enumerate(reversed(labels)):
        if label == target:
            return depth
    raise WatError(f"unknown label {target}")


def _index(token: str, names: list[str]) -> int:
    if token.startswith("$"):
        if token not in names:
            raise WatError(f"unknown local {token}")
        return names.index(token)
    return int(token)


def kernel_base64() -> str:
    return base64.b64encode(encode(WAT.read_text())).decode()


def inlined() -> str:
    """The base64 kernel charrnn.js carries now."""
    m = MARKER.search(JS.read_text())
    if not m:
        raise WatError(f'{JS}: no /*KERNEL*/"..." marker')
    return m.group(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="put the bytes into charrnn.js")
    ap.add_argument("--check", action="store_true", help="exit 1 if charrnn.js differs")
    args = ap.parse_args()
    b64 = kernel_base64()
    if args.write:
        JS.write_text(MARKER.sub(lambda m: m.group(1) + b64 + m.group(3), JS.read_text(), count=1))
    elif args.check:
        if inlined() != b64:
            sys.exit(
                "charrnn.js: its kernel differs from matvec.wat; run python tools/wat.py --write"
            )
    else:
        print(b64)


if __name__ == "__main__":
    main()
