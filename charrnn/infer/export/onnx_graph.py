"""A charrnn model as an ONNX graph, built from its weights with the `onnx` package's helpers (no
torch, no exporter): token ids and recurrent states in, logits and states out, for any batch and
any number of characters.

Two forms. `native` uses ONNX's own LSTM / GRU / RNN operators (gates reordered from PyTorch's
i, f, g, o to ONNX's i, o, f, c for the LSTM and r, z, n to z, r, h for the GRU, whose PyTorch
semantics are `linear_before_reset=1`; biases as [W_b; R_b]). `matmul` writes each step as MatMul,
Add and activations inside a Scan: onnxruntime's dynamic int8 quantization covers the LSTM operator
but not the GRU or RNN ones, and it does cover MatMul, subgraphs included. It does not quantize
(`onnx_export` does) or run anything.

Inputs: `input_ids` int64 [batch, time]; `h` float [layers, batch, hidden]; for an LSTM `c` too;
for a voiced model `voice_weights` float [1 or batch, voices]: each row's voice mix (summing to 1),
or a row of zeros for no voice. Outputs: `logits` float [batch, time, vocab]; `h_out`, `c_out`
like the inputs.

A voice is a constant on layer 0's input pre-activations (GUIDE §12). The graph folds it into layer
0's input: the voice weights ride beside each character's embedding, layer 0's input matrix gets
one column per voice (that voice's constant less the no-voice one) and its input bias the no-voice
constant, so a row of weights w adds w @ table[:V] (and zeros add table[V]) before the recurrence,
outside the GRU's r-gated term, in either form. Guidance (`--tag-strength`) is two runs, voiced
and untagged, combined by the caller: it is not in the graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

# The version of what this module builds (with `onnx_export`'s form and quantization choices):
# part of the ONNX engine's cache key, so a graph built by an older builder is never reused.
# Bump it with every change to this file (tests/test_onnx_cache.py holds the file to it).
GRAPH_VERSION = 2
OPSET = 17
IR_VERSION = 8  # what onnxruntime releases of the last few years read
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
VOICE_INPUT = "voice_weights"  # a voiced model's input: [1 or batch, voices]


def reorder(w: np.ndarray, cell: str) -> np.ndarray:
    """PyTorch's gate blocks (rows) in ONNX's order."""
    if cell == "rnn":
        return w
    blocks = np.split(w, GATES[cell], axis=0)
    order = (0, 3, 1, 2) if cell == "lstm" else (1, 0, 2)  # i,f,g,o → i,o,f,g ; r,z,n → z,r,n
    return np.concatenate([blocks[k] for k in order], axis=0)


def build(
    cell: str,
    tensors: Mapping[str, np.ndarray],
    form: str = "native",
    metadata: Mapping[str, str] | None = None,
) -> ModelProto:
    """The model's graph; `metadata` goes into the model's metadata_props."""
    layers = sum(1 for k in tensors if k.startswith("rnn.weight_hh_l"))
    hidden = tensors["rnn.weight_hh_l0"].shape[1]
    vocab = tensors["head.weight"].shape[0]
    voices = len(tensors["voice.weight"]) - 1 if "voice.weight" in tensors else 0
    if voices:
        tensors = voiced_layer0(tensors)
    g = _Graph(tensors)
    nodes = g.nodes
    nodes.append(
        helper.make_node(
            "Gather", ["embed.weight", "input_ids"], ["emb_chars" if voices else "emb"]
        )
    )
    if voices:
        _voice_inputs(g, voices)
    nodes.append(helper.make_node("Transpose", ["emb"], ["x0"], perm=[1, 0, 2]))  # time first
    states = ["h", "c"] if cell == "lstm" else ["h"]
    if form == "native":
        top = _native(g, cell, layers, hidden, states)
        nodes.append(
            helper.make_node("MatMul", [top, g.const("head_t", tensors["head.weight"].T)], ["proj"])
        )
        nodes.append(helper.make_node("Add", ["proj", "head.bias"], ["logits_tb"]))
        g.init("head.bias", tensors["head.bias"])
    elif form == "matmul":
        _scan(g, cell, layers, hidden, tensors)
    else:
        raise ValueError(f"unknown form {form!r}")
    nodes.append(helper.make_node("Transpose", ["logits_tb"], ["logits"], perm=[1, 0, 2]))
    g.init("embed.weight", tensors["embed.weight"])
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "time"])]
    inputs += [helper.make_tensor_value_info(s, f32, [layers, "batch", hidden]) for s in states]
    if voices:
        inputs.append(helper.make_tensor_value_info(VOICE_INPUT, f32, ["voice_rows", voices]))
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "time", vocab])]
    outputs += [
        helper.make_tensor_value_info(f"{s}_out", f32, [layers, "batch", hidden]) for s in states
    ]
    graph = helper.make_graph(nodes, "charrnn", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="charrnn",
    )
    helper.set_model_props(model, dict(metadata or {}))
    return model


def voiced_layer0(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A voiced model's tensors with layer 0 reading [embedding; voice weights]: its input matrix's
    voice columns become one column per voice, table[v] - table[V] (table = each voice's constant,
    `voice_rows.voice_table`), and its input bias gains table[V], the no-voice constant."""
    out = {k: v for k, v in tensors.items() if k != "voice.weight"}
    embed = tensors["embed.weight"].shape[1]
    wih0 = np.asarray(tensors["rnn.weight_ih_l0"], dtype=np.float64)
    table = np.asarray(tensors["voice.weight"], dtype=np.float64) @ wih0[:, embed:].T
    columns = (table[:-1] - table[-1]).T  # gates × V
    out["rnn.weight_ih_l0"] = np.concatenate([wih0[:, :embed], columns], axis=1).astype(np.float32)
    bias = np.asarray(tensors["rnn.bias_ih_l0"], dtype=np.float64) + table[-1]
    out["rnn.bias_ih_l0"] = bias.astype(np.float32)
    return out


def _voice_inputs(g: _Graph, voices: int) -> None:
    """emb = [emb_chars; the voice weights of the row at every step] along the features: the
    weights [1 or batch, V] expanded to [batch, time, V]."""
    n = helper.make_node
    g.nodes += [
        n("Shape", ["emb_chars"], ["emb_shape"]),
        n("Slice", ["emb_shape", g.ints("bt_lo", [0]), g.ints("bt_hi", [2])], ["bt"]),
        n("Concat", ["bt", g.ints("voice_count", [voices])], ["btv"], axis=0),
        n("Unsqueeze", [VOICE_INPUT, g.ints("time_axis", [1])], ["voice_b1v"]),
        n("Expand", ["voice_b1v", "btv"], ["voice_btv"]),
        n("Concat", ["emb_chars", "voice_btv"], ["emb"], axis=2),
    ]


class _Graph:
    """Nodes and initializers being collected, with unique constant names."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.t = tensors
        self.nodes: list = []
        self.initializers: list[TensorProto] = []

    def init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        return self.init(name, np.asarray(value, dtype=np.float32))

    def ints(self, name: str, values: list[int]) -> str:
        return self.init(name, np.asarray(values, dtype=np.int64))


def _native(g: _Graph, cell: str, layers: int, hidden: int, states: list[str]) -> str:
    """One ONNX recurrent operator per layer; returns the top layer's output [time, batch, H]."""
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[cell]
    x = "x0"
    outs: dict[str, list[str]] = {s: [] for s in states}
    for i in range(layers):
        t = g.t
        w = g.const(f"W{i}", reorder(t[f"rnn.weight_ih_l{i}"], cell)[None])
        r = g.const(f"R{i}", reorder(t[f"rnn.weight_hh_l{i}"], cell)[None])
        b = np.concatenate(
            [reorder(t[f"rnn.bias_ih_l{i}"], cell), reorder(t[f"rnn.bias_hh_l{i}"], cell)]
        )
        g.const(f"B{i}", b[None])
        lo, hi = g.ints(f"lo{i}", [i]), g.ints(f"hi{i}", [i + 1])
        axis0 = "axis0" if i else g.ints("axis0", [0])
        inits = []
        for s in states:
            g.nodes.append(helper.make_node("Slice", [s, lo, hi, axis0], [f"{s}{i}"]))
            inits.append(f"{s}{i}")
        ys = [f"y{i}"] + [f"{s}_last{i}" for s in states]
        ins = [x, w, r, f"B{i}", "", *inits]
        attrs: dict = {"hidden_size": hidden}
        if cell == "gru":
            attrs["linear_before_reset"] = 1
        if cell == "rnn":
            attrs["activations"] = ["Tanh"]
        g.nodes.append(helper.make_node(op, ins, ys, **attrs))
        sq = "sq_axis" if i else g.ints("sq_axis", [1])
        g.nodes.append(helper.make_node("Squeeze", [f"y{i}", sq], [f"x{i + 1}"]))
        x = f"x{i + 1}"
        for s in states:
            outs[s].append(f"{s}_last{i}")
    for s in states:
        g.nodes.append(helper.make_node("Concat", outs[s], [f"{s}_out"], axis=0))
    return x


def _scan(g: _Graph, cell: str, layers: int, hidden: int, t: Mapping[str, np.ndarray]) -> None:
    """Every layer and the head as MatMuls in one Scan over time; writes logits_tb, h_out (c_out)."""
    states = ["h", "c"] if cell == "lstm" else ["h"]
    f32 = TensorProto.FLOAT
    body: list = []
    inits: list[TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    H = hidden
    x = "x_t"
    for i in range(layers):
        wt = const(f"Wt{i}", t[f"rnn.weight_ih_l{i}"].T)
        rt = const(f"Rt{i}", t[f"rnn.weight_hh_l{i}"].T)
        bi = const(f"bi{i}", t[f"rnn.bias_ih_l{i}"])
        bh = const(f"bh{i}", t[f"rnn.bias_hh_l{i}"])
        body += [
            helper.make_node("MatMul", [x, wt], [f"xw{i}"]),
            helper.make_node("Add", [f"xw{i}", bi], [f"gi{i}"]),
            helper.make_node("MatMul", [f"h_in{i}", rt], [f"hr{i}"]),
            helper.make_node("Add", [f"hr{i}", bh], [f"gh{i}"]),
        ]
        body += _cell_nodes(cell, i, H)
        x = f"h_new{i}"
    body.append(helper.make_node("MatMul", [x, const("head_t", t["head.weight"].T)], ["proj_t"]))
    body.append(helper.make_node("Add", ["proj_t", const("head_b", t["head.bias"])], ["logit_t"]))
    for i in range(layers):
        for s in states:
            body.append(helper.make_node("Identity", [f"{s}_new{i}"], [f"{s}_next{i}"]))
    b_in = [
        helper.make_tensor_value_info(f"{s}_in{i}", f32, ["batch", H])
        for s in states
        for i in range(layers)
    ]
    b_in.append(helper.make_tensor_value_info("x_t", f32, ["batch", None]))
    b_out = [
        helper.make_tensor_value_info(f"{s}_next{i}", f32, ["batch", H])
        for s in states
        for i in range(layers)
    ]
    b_out.append(
        helper.make_tensor_value_info("logit_t", f32, ["batch", t["head.weight"].shape[0]])
    )
    body_graph = helper.make_graph(body, "step", b_in, b_out, inits)
    # The scan's initial states: h[i] (and c[i]) of the inputs, one [batch, H] each.
    init_names = []
    for s in states:
        parts = [f"{s}_l{i}" for i in range(layers)]
        split = g.ints("split_ones", [1] * layers) if s == "h" else "split_ones"
        g.nodes.append(helper.make_node("Split", [s, split], [f"{p}_3d" for p in parts], axis=0))
        sq = g.ints("sq0", [0]) if s == "h" else "sq0"
        for p in parts:
            g.nodes.append(helper.make_node("Squeeze", [f"{p}_3d", sq], [p]))
        init_names += parts
    finals = [f"{s}_fin{i}" for s in states for i in range(layers)]
    g.nodes.append(
        helper.make_node(
            "Scan", [*init_names, "x0"], [*finals, "logits_tb"], body=body_graph, num_scan_inputs=1
        )
    )
    for s in states:
        for i in range(layers):
            g.nodes.append(helper.make_node("Unsqueeze", [f"{s}_fin{i}", "sq0"], [f"{s}_fin3d{i}"]))
        g.nodes.append(
            helper.make_node(
                "Concat", [f"{s}_fin3d{i}" for i in range(layers)], [f"{s}_out"], axis=0
            )
        )


def _cell_nodes(cell: str, i: int, H: int) -> list:
    """The gate arithmetic of layer i from gi{i} (input part) and gh{i} (hidden part)."""
    n = helper.make_node
    if cell == "rnn":
        return [n("Add", [f"gi{i}", f"gh{i}"], [f"pre{i}"]), n("Tanh", [f"pre{i}"], [f"h_new{i}"])]
    if cell == "lstm":
        return [
            n("Add", [f"gi{i}", f"gh{i}"], [f"pre{i}"]),
            n("Split", [f"pre{i}"], [f"ig{i}", f"fg{i}", f"gg{i}", f"og{i}"], axis=1),
            n("Sigmoid", [f"ig{i}"], [f"i{i}"]),
            n("Sigmoid", [f"fg{i}"], [f"f{i}"]),
            n("Tanh", [f"gg{i}"], [f"g{i}"]),
            n("Sigmoid", [f"og{i}"], [f"o{i}"]),
            n("Mul", [f"f{i}", f"c_in{i}"], [f"fc{i}"]),
            n("Mul", [f"i{i}", f"g{i}"], [f"ig2{i}"]),
            n("Add", [f"fc{i}", f"ig2{i}"], [f"c_new{i}"]),
            n("Tanh", [f"c_new{i}"], [f"tc{i}"]),
            n("Mul", [f"o{i}", f"tc{i}"], [f"h_new{i}"]),
        ]
    # GRU: r, z from the sum; n = tanh(gi_n + r * gh_n); h = n + z * (h - n)
    return [
        n("Split", [f"gi{i}"], [f"gir{i}", f"giz{i}", f"gin{i}"], axis=1),
        n("Split", [f"gh{i}"], [f"ghr{i}", f"ghz{i}", f"ghn{i}"], axis=1),
        n("Add", [f"gir{i}", f"ghr{i}"], [f"rp{i}"]),
        n("Sigmoid", [f"rp{i}"], [f"r{i}"]),
        n("Add", [f"giz{i}", f"ghz{i}"], [f"zp{i}"]),
        n("Sigmoid", [f"zp{i}"], [f"z{i}"]),
        n("Mul", [f"r{i}", f"ghn{i}"], [f"rn{i}"]),
        n("Add", [f"gin{i}", f"rn{i}"], [f"np{i}"]),
        n("Tanh", [f"np{i}"], [f"nn{i}"]),
        n("Sub", [f"h_in{i}", f"nn{i}"], [f"hd{i}"]),
        n("Mul", [f"z{i}", f"hd{i}"], [f"zh{i}"]),
        n("Add", [f"nn{i}", f"zh{i}"], [f"h_new{i}"]),
    ]
