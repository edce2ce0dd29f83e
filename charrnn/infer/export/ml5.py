"""`--format ml5`: the files ml5.js's `charRNN` read (ml5 up to 0.12.2, on TensorFlow.js 1.x), for
sketches still pinned to that release: `manifest.json` (variable name → file and shape), one raw
little-endian float32 file per variable, and `vocab.json` (character → id).

ml5 runs TensorFlow's basic LSTM cell: one kernel over the concatenated input and state, gates in the
order i, j (the candidate), f, o, and a forget bias of 1 added at run time; it reads exactly two layers
and an `embedding`. So a PyTorch 2-layer LSTM maps exactly: kernel = [W_ih; W_hh]ᵀ with the gate
columns reordered, bias = b_ih + b_hh with 1 taken off the forget gate. Anything else is refused in
one line. ml5 has no voice input: a voiced model is refused unless `--tag` names the voice (or mix)
to bake in, as that voice's constant added to layer 0's input bias. Variable names follow ml5's
loader rules (a layer's kernel names `cell_N` and holds a `w`; its bias holds none; the output layer
names `softmax`).
"""

from __future__ import annotations

import json

import numpy as np

from charrnn.errors import InputError
from charrnn.infer.voice_rows import voice_table
from charrnn.model_config import ModelConfig

ML5_FORGET_BIAS = 1.0  # what tf.basicLSTMCell adds to the forget gate at every step


def check(cfg: ModelConfig, tagged: bool = False) -> None:
    """A one-line refusal for a model ml5's charRNN cannot run (a voiced one without a voice
    chosen to bake in: `tagged`)."""
    if cfg.voices and not tagged:
        raise InputError(
            "--format ml5 has no voice input: choose the voice to bake into the weights with "
            "--tag NAME (or a mix, --tag NAME=W repeated)"
        )
    if cfg.cell != "lstm" or cfg.layers != 2:
        raise InputError(
            f"--format ml5 holds only a 2-layer LSTM (ml5's charRNN reads exactly that); this "
            f"model is a {cfg.layers}-layer {cfg.cell.upper() if cfg.cell != 'rnn' else 'RNN'}"
        )


def with_voice(tensors: dict[str, np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
    """A voiced model's tensors as an unvoiced one's that always writes in this voice mix: layer
    0 keeps its character columns and its input bias gains weights @ voice_table[:V]."""
    out = {k: v for k, v in tensors.items() if k != "voice.weight"}
    embed = tensors["embed.weight"].shape[1]
    wih0 = np.asarray(tensors["rnn.weight_ih_l0"], dtype=np.float32)
    table = voice_table(np.asarray(tensors["voice.weight"], np.float32), wih0, embed)
    constant = np.asarray(weights, np.float64) @ table[:-1].astype(np.float64)
    out["rnn.weight_ih_l0"] = np.ascontiguousarray(wih0[:, :embed])
    out["rnn.bias_ih_l0"] = (tensors["rnn.bias_ih_l0"] + constant).astype(np.float32)
    return out


def _tf_gates(w: np.ndarray, axis: int) -> np.ndarray:
    """PyTorch's i, f, g, o blocks in TensorFlow's i, j (= g), f, o order."""
    i, f, g, o = np.split(w, 4, axis=axis)
    return np.concatenate([i, g, f, o], axis=axis)


def variables(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ml5's variables (float32) from a 2-layer LSTM's tensors."""
    out = {"embedding": tensors["embed.weight"]}
    for i in range(2):
        kernel = np.concatenate(
            [tensors[f"rnn.weight_ih_l{i}"].T, tensors[f"rnn.weight_hh_l{i}"].T], axis=0
        )
        bias = _tf_gates(tensors[f"rnn.bias_ih_l{i}"] + tensors[f"rnn.bias_hh_l{i}"], 0)
        hidden = bias.shape[0] // 4
        bias[2 * hidden : 3 * hidden] -= ML5_FORGET_BIAS
        out[f"rnn/multi_rnn_cell/cell_{i}/basic_lstm_cell/kernel"] = _tf_gates(kernel, 1)
        out[f"rnn/multi_rnn_cell/cell_{i}/basic_lstm_cell/bias"] = bias
    out["softmax_w"] = tensors["head.weight"].T
    out["softmax_b"] = tensors["head.bias"]
    return {k: np.ascontiguousarray(v, dtype="<f4") for k, v in out.items()}


def files(meta: dict, tensors: dict[str, np.ndarray]) -> dict[str, bytes]:
    """manifest.json, vocab.json and one file per variable."""
    manifest: dict[str, dict] = {}
    contents: dict[str, bytes] = {}
    for n, (name, value) in enumerate(variables(tensors).items()):
        filename = f"var{n}"
        manifest[name] = {"filename": filename, "shape": list(value.shape)}
        contents[filename] = value.tobytes()
    contents["manifest.json"] = json.dumps(manifest, indent=1, allow_nan=False).encode()
    vocab = {ch: i for i, ch in enumerate(meta["vocab"])}
    contents["vocab.json"] = json.dumps(vocab, ensure_ascii=False).encode()
    return contents
