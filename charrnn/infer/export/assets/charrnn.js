/* charrnn.js: a charrnn model (LSTM, GRU or tanh RNN, any depth and width) generating text in a web
 * page or in Node, offline, with nothing to install. Written by `charrnn export --format web`.
 *
 * Usable as a classic <script> (window.charrnn), an ES module (charrnn.mjs beside it), and in Node
 * (require). The arithmetic is charrnn's numpy engine's for one stream (PyTorch's gate semantics;
 * the first layer's input projection folded into a vocab x gates table at load). Its matrix-vector
 * products run in a WebAssembly SIMD kernel inlined below (source: matvec.wat in charrnn's
 * repository), or in plain JavaScript where SIMD is unavailable. Not done here: training, batches of
 * streams, charrnn's --ban/--no-repeat/--until controls. A seeded draw here does not equal
 * `charrnn sample --rng-seed` (a different generator); greedy text (temperature 0) does.
 *
 * A voiced model (manifest.voices) writes in a voice or a mix: `tag` is a voice's name or
 * {name: weight} (weights >= 0, normalised to sum 1; none: no voice). A voice is a constant on
 * layer 0's input pre-activations, computed at load from the exported voice embedding and layer
 * 0's voice columns (charrnn's numpy engine's voice table); a mix is the weighted sum of the
 * voices' constants. `tagStrength` S != 1 runs each stream twice, voiced and untagged, and draws
 * from u + S(c - u) of their raw logits, before any filter (charrnn's guidance).
 */
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.charrnn = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";
  const KERNEL = /*KERNEL*/"AGFzbQEAAAABCQFgBX9/f39/AAIPAQNlbnYGbWVtb3J5AgABAwIBAAcKAQZtYXR2ZWMAAArYAgHVAgIIfwV7IARBAnQhBSABIAVqIQYgAiADQQJ0aiEHAkAgA0UNACAERQ0AA0AgACEJIAkgBWohCiAKIAVqIQsgCyAFaiEMQwAAAAD9EyIOIg8iECERIAEhCANAIAj9AAQAIQ0gDiAJ/QAEACAN/eYB/eQBIQ4gDyAK/QAEACAN/eYB/eQBIQ8gECAL/QAEACAN/eYB/eQBIRAgESAM/QAEACAN/eYB/eQBIREgCUEQaiEJIApBEGohCiALQRBqIQsgDEEQaiEMIAhBEGoiCCAGSQ0ACyACIA79HwAgDv0fAZIgDv0fAiAO/R8DkpI4AgAgAiAP/R8AIA/9HwGSIA/9HwIgD/0fA5KSOAIEIAIgEP0fACAQ/R8BkiAQ/R8CIBD9HwOSkjgCCCACIBH9HwAgEf0fAZIgEf0fAiAR/R8DkpI4AgwgDCEAIAJBEGoiAiAHSQ0ACwsL";
  const GATES = { lstm: 4, gru: 3, rnn: 1 };
  const YIELD_MS = 12; // longest stretch of work between yields to the page's event loop
  const SEED_MAX = 0xffffffff; // the generator's seed is 32 bits: a larger one would alias a smaller

  const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

  /** tagStrength: a number >= 0 (1: the plain voice), refused in one line otherwise. */
  function checkStrength(s) {
    if (typeof s !== "number" || !Number.isFinite(s) || s < 0) {
      throw new RangeError(`tagStrength must be a number >= 0, got ${String(s)}`);
    }
    return s;
  }

  /** globalThis.charrnnModels (model.js files add to it), or an empty registry. model.js makes it
   * a null-prototype object, and lookups ask for own properties, so a model may be named
   * `__proto__`, `constructor` or `toString` like any other. */
  function registered() {
    const r = typeof globalThis !== "undefined" && globalThis.charrnnModels;
    return r && typeof r === "object" ? r : Object.create(null);
  }

  /** The generator's seed, refused in one line unless an integer it can tell from every other. */
  function checkSeed(seed) {
    if (!Number.isInteger(seed) || seed < 0 || seed > SEED_MAX) {
      const shown = typeof seed === "string" ? JSON.stringify(seed) : String(seed);
      throw new RangeError(`rngSeed must be an integer from 0 to ${SEED_MAX} (2^32 - 1), got ${shown}`);
    }
    return seed;
  }

  function decodeBase64(s) {
    if (typeof Buffer !== "undefined") return new Uint8Array(Buffer.from(s, "base64"));
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function half(bits) {
    const e = (bits >> 10) & 31, m = bits & 1023, s = bits & 32768 ? -1 : 1;
    if (e === 0) return s * m * 2 ** -24;
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * 2 ** (e - 15);
  }

  /** The float32 arrays of the stored tensors (int8 dequantized as q x scale[row], in float32). */
  function decodeTensors(entries, bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = {};
    for (const e of entries) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      const arr = new Float32Array(n);
      if (e.dtype === "int8") {
        const cols = n / e.shape[0];
        for (let r = 0; r < e.shape[0]; r++) {
          const s = view.getFloat32(e.scales + 4 * r, true);
          for (let c = 0; c < cols; c++) arr[r * cols + c] = view.getInt8(e.offset + r * cols + c) * s;
        }
      } else if (e.dtype === "f16") {
        for (let i = 0; i < n; i++) arr[i] = half(view.getUint16(e.offset + 2 * i, true));
      } else {
        for (let i = 0; i < n; i++) arr[i] = view.getFloat32(e.offset + 4 * i, true);
      }
      out[e.name] = { data: arr, shape: e.shape };
    }
    return out;
  }

  const pad4 = (n) => (n + 3) & ~3;

  function jsMatvec(f) {
    // The same product in plain JavaScript, over the same memory (the SIMD-less fallback).
    return function (w, x, y, rows, cols) {
      w >>= 2; x >>= 2; y >>= 2;
      for (let r = 0; r < rows; r++, w += cols) {
        let s = 0;
        for (let k = 0; k < cols; k++) s += f[w + k] * f[x + k];
        f[y + r] = s;
      }
    };
  }

  async function backendFor(bytes, want) {
    // Memory: float32 regions, each padded to 4 floats (16 bytes) as the kernel needs.
    const pages = Math.ceil(bytes / 65536) + 1;
    if (want !== "js" && typeof WebAssembly === "object") {
      const code = decodeBase64(KERNEL);
      if (WebAssembly.validate(code)) {
        const memory = new WebAssembly.Memory({ initial: pages });
        const { instance } = await WebAssembly.instantiate(code, { env: { memory } });
        return { name: "simd", f: new Float32Array(memory.buffer), matvec: instance.exports.matvec };
      }
      if (want === "simd") throw new Error("this runtime has no WebAssembly SIMD");
    }
    const f = new Float32Array(pages * 16384);
    return { name: "js", f, matvec: jsMatvec(f) };
  }

  /** xorshift128+-style generator (sfc32) seeded through splitmix32: u in [0, 1). */
  function generator(seed) {
    let s = seed >>> 0;
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    let a = mix(), b = mix(), c = mix(), d = mix();
    return function () {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      return t / 4294967296;
    };
  }

  const yieldNow = (() => {
    if (typeof MessageChannel !== "undefined" && typeof window !== "undefined") {
      const ch = new MessageChannel(), queue = [];
      ch.port1.onmessage = () => queue.shift()();
      return () => new Promise((r) => { queue.push(r); ch.port2.postMessage(0); });
    }
    if (typeof setImmediate === "function") return () => new Promise((r) => setImmediate(r));
    return () => new Promise((r) => setTimeout(r, 0));
  })();

  const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));

  /** The sampling order of charrnn's logits.py: temperature (0: greedy), top-k on the raw logits,
   * top-p, min-p; the most likely character always stays. Returns probabilities (Float64Array). */
  function distribution(logits, opt) {
    const n = logits.length, x = Float64Array.from(logits);
    let best = 0;
    for (let i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    const p = new Float64Array(n);
    const t = opt.temperature ?? 1;
    if (t === 0) { p[best] = 1; return p; }
    if (opt.topK && opt.topK < n) {
      const cut = Float64Array.from(x).sort()[n - opt.topK];
      for (let i = 0; i < n; i++) if (x[i] < cut) x[i] = -Infinity;
    }
    const top = x[best];
    for (let i = 0; i < n; i++) x[i] = (x[i] - top) / Math.max(t, Number.MIN_VALUE);
    if (opt.topP != null && opt.topP < 1) {
      const order = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b);
      let total = 0;
      for (let i = 0; i < n; i++) total += Math.exp(x[i]);
      let before = 0;
      for (const i of order) {
        const q = Math.exp(x[i]) / total;
        if (before >= opt.topP) x[i] = -Infinity;
        before += q;
      }
    }
    if (opt.minP) for (let i = 0; i < n; i++) if (x[i] < Math.log(opt.minP)) x[i] = -Infinity;
    x[best] = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += (p[i] = Math.exp(x[i]));
    for (let i = 0; i < n; i++) p[i] /= sum;
    return p;
  }

  function draw(p, u) {
    // inverse CDF, as charrnn's draw(): never a character of probability 0
    let total = 0;
    for (let i = 0; i < p.length; i++) total += p[i];
    const target = u * total;
    let acc = 0, pick = p.length - 1;
    for (let i = 0; i < p.length; i++) {
      acc += p[i];
      if (acc > target) { pick = i; break; }
    }
    while (p[pick] === 0 && pick > 0) pick--;
    return pick;
  }

  function softmax(logits, t) {
    const n = logits.length;
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, logits[i] / t);
    const p = new Float64Array(n);
    let s = 0;
    for (let i = 0; i < n; i++) s += (p[i] = Math.exp(logits[i] / t - m));
    for (let i = 0; i < n; i++) p[i] /= s;
    return p;
  }

  class CharRNN {
    /** CharRNN.load(source, {backend}): source is a registered model's name (model.js registers
     * itself), the URL of a model.json (its model.bin beside it), or {manifest, data} with data as
     * bytes or base64. With no source: the one registered model. backend: "auto", "simd" or "js". */
    static async load(source, options = {}) {
      let model = source;
      const registry = registered();
      if (model == null) {
        const names = Object.keys(registry);
        if (names.length !== 1) throw new Error(`name the model to load (registered: ${names.join(", ") || "none"})`);
        model = registry[names[0]];
      } else if (typeof model === "string") {
        if (hasOwn(registry, model)) model = registry[model];
        else {
          const res = await fetch(model);
          if (!res.ok) throw new Error(`${model}: HTTP ${res.status}`);
          const manifest = await res.json();
          const bin = await fetch(new URL(manifest.weights.file, res.url || new URL(model, location.href)));
          if (!bin.ok) throw new Error(`${manifest.weights.file}: HTTP ${bin.status}`);
          model = { manifest, data: new Uint8Array(await bin.arrayBuffer()) };
        }
      }
      const data = typeof model.data === "string" ? decodeBase64(model.data)
        : model.data instanceof Uint8Array ? model.data : new Uint8Array(model.data);
      const net = new CharRNN(model.manifest);
      await net._build(decodeTensors(model.manifest.tensors, data), options.backend || "auto");
      return net;
    }

    constructor(manifest) {
      this.manifest = manifest;
      this.meta = manifest.model;
      this.vocab = manifest.vocab;
      this.index = new Map(this.vocab.map((c, i) => [c, i]));
      this.defaults = manifest.sampling || {};
    }

    async _build(t, want) {
      const { cell, layers: L, hidden: H, embed: E } = this.meta;
      const V = this.vocab.length, G = GATES[cell] * H, G4 = pad4(G), H4 = pad4(H), E4 = pad4(E), V4 = pad4(V);
      this.cell = cell; this.L = L; this.H = H; this.G = G; this.V = V;
      let top = 0;
      const alloc = (floats) => { const at = top; top += pad4(floats) * 4; return at; };
      const lay = { wih: [], whh: [], h: [], c: [] };
      const w0 = alloc(G4 * E4), e0 = alloc(E4);
      for (let i = 0; i < L; i++) {
        lay.wih.push(i ? alloc(G4 * H4) : -1);
        lay.whh.push(alloc(G4 * H4));
        lay.h.push(alloc(H4));
        lay.c.push(alloc(H4));
      }
      const head = alloc(V4 * H4), gi = alloc(G4), gh = alloc(G4), out = alloc(V4);
      const be = await backendFor(top, want);
      this.backend = be.name;
      const f = be.f;
      const put = (at, m, rows, cols, cols4, stride = cols) => {
        for (let r = 0; r < rows; r++) f.set(m.subarray(r * stride, r * stride + cols), (at >> 2) + r * cols4);
      };
      const D = this.meta.voice_dim || 0, wih0 = t["rnn.weight_ih_l0"].data;
      put(w0, wih0, G, E, E4, E + D);  // a voiced model's columns after E read the voice
      const bias = [], bhh = [];
      for (let i = 0; i < L; i++) {
        if (i) put(lay.wih[i], t[`rnn.weight_ih_l${i}`].data, G, H, H4);
        put(lay.whh[i], t[`rnn.weight_hh_l${i}`].data, G, H, H4);
        const bi = t[`rnn.bias_ih_l${i}`].data, bh = t[`rnn.bias_hh_l${i}`].data;
        // The GRU's n gate multiplies its hidden part (bias included) by r: that bias stays apart.
        bias.push(cell === "gru" ? Float32Array.from(bi) : bi.map((v, j) => v + bh[j]));
        bhh.push(cell === "gru" ? Float32Array.from(bh) : new Float32Array(G));
      }
      put(head, t["head.weight"].data, V, H, H4);
      // Layer 0's input projection for every character: one lookup per step.
      const emb = t["embed.weight"].data, table = new Float32Array(V * G);
      for (let v = 0; v < V; v++) {
        f.set(emb.subarray(v * E, (v + 1) * E), e0 >> 2);
        be.matvec(w0, e0, gi, G4, E4);
        for (let j = 0; j < G; j++) table[v * G + j] = f[(gi >> 2) + j] + bias[0][j];
      }
      Object.assign(this, { f, mv: be.matvec, lay, head, gi, gh, out, H4, G4, V4, bias, bhh, table });
      this.headBias = t["head.bias"].data;
      // Each voice's constant on layer 0's input (the last row: no voice): its embedding times
      // layer 0's voice columns.
      this.voices = this.meta.voices ? this.manifest.voices.names.slice() : [];
      if (this.voices.length) {
        const emb = t["voice.weight"].data, rows = this.voices.length + 1;
        this.voiceTable = new Float32Array(rows * G);
        for (let v = 0; v < rows; v++) {
          for (let j = 0; j < G; j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += emb[v * D + d] * wih0[j * (E + D) + E + d];
            this.voiceTable[v * G + j] = s;
          }
        }
      }
      this._weights = null;
      this._voice = this._voiceRow(null);
      this.reset();
    }

    /** A tag (null, a voice's name, or {name: weight}) as voice weights summing to 1 (null: no
     * voice); refused in one line: an unknown voice (listing the model's), a negative or
     * non-numeric weight, all zero, or any tag on a model without voices. */
    voiceWeights(tag) {
      if (tag == null) return null;
      if (!this.voices.length) throw new Error("this model has no voices; leave out tag");
      const mix = typeof tag === "string" ? { [tag]: 1 } : tag;
      if (typeof mix !== "object" || Array.isArray(mix)) throw new TypeError("tag is a voice's name or {name: weight}");
      const w = new Float64Array(this.voices.length);
      for (const [name, x] of Object.entries(mix)) {
        const v = this.voices.indexOf(name);
        if (v < 0) throw new Error(`unknown voice ${JSON.stringify(name)}; this model's voices: ${this.voices.join(", ")}`);
        if (typeof x !== "number" || !Number.isFinite(x) || x < 0) {
          throw new RangeError(`voice ${JSON.stringify(name)}: the weight must be a number >= 0, got ${String(x)}`);
        }
        w[v] += x;
      }
      const total = w.reduce((a, b) => a + b, 0);
      if (!(total > 0)) throw new RangeError("voice weights are all zero; give at least one a positive weight");
      return w.map((x) => x / total);
    }

    /** The constant a voice mix adds to layer 0's input (null weights: no voice's); null for a
     * model without voices. */
    _voiceRow(weights) {
      if (!this.voiceTable) return null;
      const G = this.G, n = this.voices.length, row = new Float32Array(G);
      if (!weights) return this.voiceTable.slice(n * G, (n + 1) * G);
      for (let j = 0; j < G; j++) {
        let s = 0;
        for (let v = 0; v < n; v++) s += weights[v] * this.voiceTable[v * G + j];
        row[j] = s;
      }
      return row;
    }

    /** Write and read in this voice from now on (feed, logits, predict): a tag as `voiceWeights`
     * takes (null: no voice). It starts afresh (reset), as a voice is chosen for a whole text. */
    setTag(tag) {
      const w = this.voiceWeights(tag);
      this._weights = w;
      this._voice = this._voiceRow(w);
      return this.reset();
    }

    /** The character counts an unprimed first draw starts from: the voice's (a mix: their
     * frequencies, weighted), else the corpus's. */
    _counts0(weights) {
      const per = this.manifest.voices && this.manifest.voices.counts;
      if (weights && per && per.length === this.voices.length) {
        const out = new Float64Array(this.V);
        per.forEach((row, v) => {
          const sum = Math.max(row.reduce((a, b) => a + b, 0), 1);
          row.forEach((n, i) => { out[i] += weights[v] * (n / sum); });
        });
        return out;
      }
      return this.manifest.vocab_counts || this.vocab.map(() => 1);
    }

    /** Forget everything fed: the zero state training starts from, and no prediction yet (the
     * voice stays). */
    reset() {
      const f = this.f;
      for (let i = 0; i < this.L; i++) {
        f.fill(0, this.lay.h[i] >> 2, (this.lay.h[i] >> 2) + this.H4);
        f.fill(0, this.lay.c[i] >> 2, (this.lay.c[i] >> 2) + this.H4);
      }
      this._logits = null;
      this._counts = false;
      return this;
    }

    _step(id) {
      const { f, H, G, lay } = this;
      const gi = this.gi >> 2, gh = this.gh >> 2;
      for (let i = 0; i < this.L; i++) {
        if (i === 0) {
          f.set(this.table.subarray(id * G, (id + 1) * G), gi);
          const voice = this._voice;
          if (voice) for (let j = 0; j < G; j++) f[gi + j] += voice[j];
        } else {
          this.mv(lay.wih[i], lay.h[i - 1], this.gi, this.G4, this.H4);
          const b = this.bias[i];
          for (let j = 0; j < G; j++) f[gi + j] += b[j];
        }
        this.mv(lay.whh[i], lay.h[i], this.gh, this.G4, this.H4);
        const h = lay.h[i] >> 2, c = lay.c[i] >> 2, bh = this.bhh[i];
        if (this.cell === "lstm") {
          for (let j = 0; j < H; j++) {
            const ig = sigmoid(f[gi + j] + f[gh + j]);
            const fg = sigmoid(f[gi + H + j] + f[gh + H + j]);
            const g = Math.tanh(f[gi + 2 * H + j] + f[gh + 2 * H + j]);
            const o = sigmoid(f[gi + 3 * H + j] + f[gh + 3 * H + j]);
            f[c + j] = fg * f[c + j] + ig * g;
            f[h + j] = o * Math.tanh(f[c + j]);
          }
        } else if (this.cell === "gru") {
          for (let j = 0; j < H; j++) {
            const r = sigmoid(f[gi + j] + f[gh + j] + bh[j]);
            const z = sigmoid(f[gi + H + j] + f[gh + H + j] + bh[H + j]);
            const n = Math.tanh(f[gi + 2 * H + j] + r * (f[gh + 2 * H + j] + bh[2 * H + j]));
            f[h + j] = n + z * (f[h + j] - n);
          }
        } else {
          for (let j = 0; j < H; j++) f[h + j] = Math.tanh(f[gi + j] + f[gh + j]);
        }
      }
      this.mv(this.head, lay.h[this.L - 1], this.out, this.V4, this.H4);
      const logits = new Float32Array(this.V), o = this.out >> 2;
      for (let v = 0; v < this.V; v++) logits[v] = f[o + v] + this.headBias[v];
      this._logits = logits;
      this._counts = false;
      return logits;
    }

    /** Character ids of a text; unknown characters are refused naming them (or skipped). */
    encode(text, unknown = "error") {
      const ids = [], missing = [];
      for (const ch of text) {
        const id = this.index.get(ch);
        if (id !== undefined) ids.push(id);
        else if (!missing.includes(ch)) missing.push(ch);
      }
      if (missing.length && unknown !== "skip") {
        const shown = missing.slice(0, 10).map((c) => JSON.stringify(c)).join(" ");
        throw new Error(`${missing.length} character(s) not in the model's vocabulary: ${shown} (use unknown: "skip" to drop them)`);
      }
      return ids;
    }

    /** Read text into the state (as a prime); returns this. */
    feed(text, { unknown = "error" } = {}) {
      for (const id of this.encode(text, unknown)) this._step(id);
      return this;
    }

    /** The logits after what was fed (a copy); before anything, after an implicit newline. */
    logits() {
      if (!this._logits) this._start();
      return Float32Array.from(this._logits);
    }

    _start() {
      // A stream with no prime starts after a newline, as `charrnn sample` does; without one in
      // the vocabulary, from the character frequencies of the voice or of the corpus (drawn at
      // temperature 1).
      if (this.index.has("\n")) return this._step(this.index.get("\n"));
      const counts = this._counts0(this._weights);
      this._logits = Float32Array.from(counts, (n) => Math.log(Math.max(n, 1e-300)));
      this._counts = true; // nothing read yet: the next draw is taken at temperature 1
    }

    /** The next-character distribution at a temperature: {sample, probabilities: [{char,
     * probability}]} in vocabulary order (ml5's charRNN shape), sample drawn from it. */
    predict(temperature = 1, options = {}) {
      // Before anything is fed, without a newline to start from, the distribution is the corpus's
      // character frequencies, taken at temperature 1 (0 stays greedy) as `stream` and Python do.
      const counts = !this.index.has("\n") && (!this._logits || this._counts);
      const t = counts && temperature !== 0 ? 1 : temperature;
      const p = distribution(this.logits(), { ...options, temperature: t });
      const rng = options.rng || Math.random;
      return {
        sample: this.vocab[draw(p, rng())],
        probabilities: this.vocab.map((char, i) => ({ char, probability: p[i] })),
      };
    }

    /** A copy of the state (to branch or undo); setState restores one. */
    getState() {
      const part = (at) => this.f.slice(at >> 2, (at >> 2) + this.H);
      return {
        h: this.lay.h.map(part), c: this.lay.c.map(part), logits: this._logits && Float32Array.from(this._logits),
        counts: this._counts, voice: this._voice, weights: this._weights,
      };
    }

    setState(state) {
      for (let i = 0; i < this.L; i++) {
        this.f.set(state.h[i], this.lay.h[i] >> 2);
        this.f.set(state.c[i], this.lay.c[i] >> 2);
      }
      this._logits = state.logits && Float32Array.from(state.logits);
      this._counts = Boolean(state.counts);
      if (state.voice !== undefined) { this._voice = state.voice; this._weights = state.weights; }
      return this;
    }

    /** Generate from a fresh state primed with `seed` (the model's own state is left as it was):
     * resolves {text, sample (= text), finishReason ("length" | "stop"), rngSeed}. onChar(c) is
     * called for each character as it is written. */
    async generate(options = {}) {
      let text = "";
      const it = this.stream(options);
      for await (const c of it) {
        text += c.char;
        if (options.onChar) options.onChar(c);
      }
      return { text, sample: text, finishReason: it.finishReason, rngSeed: it.rngSeed };
    }

    /** An async iterator of {char, probability, top: [{char, probability}]} per written character
     * (probability under the distribution it was drawn from); it yields to the event loop now and
     * then, so a page stays responsive. Options: seed, length, temperature, topK, topP, minP, stop
     * (a string or several), rngSeed (an integer from 0 to 2^32 - 1), unknown ("error" | "skip"),
     * top (guesses kept, default 5), tag (a voiced model: a voice's name or {name: weight}; the
     * model's own setTag voice where not given), tagStrength (default 1; guidance otherwise). Several streams of one model may run at once, interleaved:
     * each keeps its own state and swaps it in only for its own steps, never across a yield, so
     * each writes the text it writes alone, and what `feed` built is never disturbed. */
    stream(options = {}) {
      const o = { ...options };
      const length = o.length ?? 1000, stops = [].concat(o.stop || []).filter(Boolean);
      const rngSeed = checkSeed(o.rngSeed ?? Math.floor(Math.random() * 2 ** 31));
      const ids = this.encode(o.seed || "", o.unknown || "error"), self = this;
      const weights = "tag" in o ? this.voiceWeights(o.tag) : this._weights;
      const strength = checkStrength(o.tagStrength ?? 1);
      if (strength !== 1 && !weights) throw new Error("tagStrength steers toward a voice; give one with tag");
      // One row per stream, or (guided) two: voiced and untagged, both fed the drawn characters.
      const rows = strength !== 1 ? [weights, null] : [weights];
      // No prime and no newline: the first draw is from the corpus's character frequencies, at
      // temperature 1 (0 stays greedy) with the other filters kept, as charrnn's stream.draw.
      const unigram = !ids.length && !this.index.has("\n");
      const firstOptions = { ...o, temperature: o.temperature === 0 ? 0 : 1 };
      const it = {
        rngSeed, finishReason: null,
        async *[Symbol.asyncIterator]() {
          const rng = generator(rngSeed);
          let mine = null; // this stream's state (a row each) between its turns
          const turn = (work) => {
            const outer = self.getState();
            try {
              if (!mine) {
                mine = rows.map((w) => {
                  self.reset();
                  self._weights = w;
                  self._voice = self._voiceRow(w);
                  if (ids.length) for (const id of ids) self._step(id);
                  else self._start();
                  return self.getState();
                });
              }
              return work();
            } finally {
              self.setState(outer);
            }
          };
          const logitsNow = () => mine.length === 1 ? mine[0].logits : guided(mine[0].logits, mine[1].logits, strength);
          const advance = (id) => {
            mine = mine.map((s) => { self.setState(s); self._step(id); return self.getState(); });
          };
          let held = [], written = 0, last = now(), finish = length > 0 ? null : "length";
          while (!finish) {
            const ready = turn(() => {
              const p = distribution(logitsNow(), unigram && !written ? firstOptions : o);
              const id = draw(p, rng());
              written++;
              held.push(self._record(id, p, o.top ?? 5));
              const shown = held.map((c) => c.char).join("");
              const hit = stops.map((s) => [shown.indexOf(s), s]).filter(([at]) => at >= 0).sort((a, b) => a[0] - b[0])[0];
              if (hit) {
                held = held.slice(0, [...shown.slice(0, hit[0])].length);
                finish = "stop";
                return [];
              }
              const out = held.splice(0, held.length - holdBack(shown, stops));
              if (written < length) advance(id);
              else finish = "length";
              return out;
            });
            for (const c of ready) yield c;
            if (!finish && now() - last > YIELD_MS) { await yieldNow(); last = now(); }
          }
          it.finishReason = finish;
          for (const c of held) yield c;
        },
      };
      return it;
    }

    _record(id, p, k) {
      const order = topIndices(p, k);
      return { char: this.vocab[id], id, probability: p[id], top: order.map((i) => ({ char: this.vocab[i], probability: p[i] })) };
    }

    /** How probable a text is from a fresh state (as `charrnn score`): {chars, nats,
     * natsPerChar, bitsPerChar, perplexity, unknown}. Unknown characters are skipped and counted.
     * options.tag: the voice to read it in (default: the model's setTag voice). */
    score(text, options = {}) {
      const saved = this.getState();
      const weights = "tag" in options ? this.voiceWeights(options.tag) : this._weights;
      let nats = 0, chars = 0, unknown = 0;
      try {
        this.reset();
        this._weights = weights;
        this._voice = this._voiceRow(weights);
        const counts = weights && this.manifest.voices ? this._counts0(weights) : this.manifest.vocab_counts;
        let logp = null;
        if (this.index.has("\n")) this._step(this.index.get("\n"));
        else if (counts) {
          const total = counts.reduce((a, b) => a + b, 0), floor = weights ? 1e-300 : 1;  // a voice's are frequencies
          logp = Array.from(counts, (n) => Math.log(Math.max(n, floor) / total));
        }
        for (const ch of text) {
          const id = this.index.get(ch);
          if (id === undefined) { unknown++; continue; }
          if (this._logits) logp = Array.from(softmax(this._logits, 1), Math.log);
          nats -= logp ? logp[id] : Math.log(1 / this.V);
          chars++;
          this._step(id);
        }
      } finally {
        this.setState(saved);
      }
      const npc = chars ? nats / chars : NaN;
      return { chars, nats, natsPerChar: npc, bitsPerChar: npc / Math.LN2, perplexity: Math.exp(npc), unknown };
    }
  }

  /** Guided logits: u + S(c - u), as charrnn's guidance combines the raw logits. */
  function guided(c, u, s) {
    const out = new Float32Array(c.length);
    for (let i = 0; i < c.length; i++) out[i] = u[i] + s * (c[i] - u[i]);
    return out;
  }

  /** The k most probable ids, most probable first (ties: lower id first), in O(vocab x k): a
   * 5,000-character vocabulary is not sorted for every character written. */
  function topIndices(p, k) {
    const best = [];
    for (let i = 0; i < p.length; i++) {
      if (best.length === k && p[i] <= p[best[k - 1]]) continue;
      let at = best.length < k ? best.length : k - 1;
      while (at > 0 && p[best[at - 1]] < p[i]) { best[at] = best[at - 1]; at--; }
      best[at] = i;
    }
    return best;
  }

  /** How many characters at the end of `text` might begin a stop string (held back until known). */
  function holdBack(text, stops) {
    let keep = 0;
    for (const s of stops) {
      for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
        if (text.endsWith(s.slice(0, n))) { keep = n; break; }
      }
    }
    return [...text.slice(text.length - keep)].length;
  }

  /** Whether a model of this name is registered (model.js loaded). */
  const isRegistered = (name) => hasOwn(registered(), name);

  return { CharRNN, load: CharRNN.load, isRegistered, version: "1" };
});
