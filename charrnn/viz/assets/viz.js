/* charrnn viz: draws the text from the JSON data blob in <script id="data">, written by
 * charrnn/viz/page.py. Plain browser JavaScript, no libraries, no requests.
 *
 * The blob's keys:
 *   meta          model and text facts for the header (name, cell, layers, hidden, parameters,
 *                 corpus, best_val_bpc, source, chars, source_chars, scored, unknown, bpc)
 *   text          the text; one element is drawn per character (code point)
 *   vocab         the model's characters; guesses are indices into it
 *   k             guesses kept per character (5, fewer for a tiny vocabulary)
 *   seen_logprob  base64 float32 LE, per character: log-probability of the character seen there
 *                 (NaN where the model does not know the character and skipped it)
 *   top_ids       base64 uint8 (uint16 LE past 256 characters), per character k vocab indices
 *   top_probs     base64 uint16 LE, per character k probabilities × prob_scale
 *   properties    [{name, about, varies}] the text properties units were picked for
 *   units         [{name, group, r, scale, q}] q: base64 int8 per character, value = q × scale,
 *                 -128 = no state yet; r: correlation with each property (null: it is constant)
 */
"use strict";

(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const chars = Array.from(D.text); // code points, as Python counts them
  const n = chars.length;
  const K = D.k;
  const SURPRISAL_CAP = 8; // bits at which the surprisal shading is darkest
  const NO_VALUE = -128;

  // --- decoding -----------------------------------------------------------------------------
  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function float32s(b64) {
    const b = bytes(b64);
    const view = new DataView(b.buffer);
    const out = new Float32Array(b.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  function uint16s(b64) {
    const b = bytes(b64);
    const view = new DataView(b.buffer);
    const out = new Uint16Array(b.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint16(2 * i, true);
    return out;
  }
  const seenLogprob = float32s(D.seen_logprob);
  const topIds = D.vocab.length > 256 ? uint16s(D.top_ids) : bytes(D.top_ids);
  const topProbs = uint16s(D.top_probs);
  const unitCodes = D.units.map((u) => new Int8Array(bytes(u.q).buffer));
  const vocabIndex = new Map(D.vocab.map((c, i) => [c, i]));

  // --- small helpers ------------------------------------------------------------------------
  const { el, visible, group3 } = window.charrnnDom; // dom.js, put inline before this file
  const prob = (code) => (code / D.prob_scale).toFixed(4);
  const bits = (logprob) => -logprob / Math.LN2;

  // --- header -------------------------------------------------------------------------------
  const M = D.meta;
  document.title = `${M.name} · charrnn viz`;
  document.getElementById("title").textContent = M.name;
  const facts = document.getElementById("facts");
  const params = M.parameters >= 1e6 ? `${(M.parameters / 1e6).toFixed(2)}M` : group3(M.parameters);
  const chunks = [
    [`${M.cell.toUpperCase()} ${M.layers}×${M.hidden}`, `, ${params} parameters, trained on `],
    [M.corpus || "an unnamed corpus", ""],
  ];
  for (const [strong, rest] of chunks) facts.append(el("b", { text: strong }), rest);
  if (M.best_val_bpc != null) facts.append(` (best validation ${M.best_val_bpc.toFixed(3)} bpc)`);
  facts.append(". This text: ", el("b", { text: M.source }), ` — ${group3(M.chars)} characters`);
  if (M.source_chars > M.chars) facts.append(` (the first of ${group3(M.source_chars)})`);
  facts.append(", ", el("b", { text: M.bpc == null ? "no" : `${M.bpc.toFixed(3)} bpc` }));
  if (M.unknown) facts.append(`, ${group3(M.unknown)} unknown characters skipped`);
  facts.append(".");

  // --- the text: one span per character -----------------------------------------------------
  const textBox = document.getElementById("text");
  const spans = new Array(n);
  const lineOf = new Int32Array(n);
  const colOf = new Int32Array(n);
  const lineStarts = [0];
  const frag = document.createDocumentFragment();
  let line = 1;
  let col = 1;
  for (let i = 0; i < n; i++) {
    const ch = chars[i];
    const span = document.createElement("span");
    span.className = "c";
    span.dataset.i = i;
    if (ch === "\n") {
      span.className = "c nl";
      span.textContent = "↵";
    } else if (ch === " " || ch === "\t") {
      span.textContent = ch;
    } else {
      const shown = visible(ch);
      if (shown !== ch) span.className = "c ctl";
      span.textContent = shown;
    }
    if (Number.isNaN(seenLogprob[i])) span.classList.add("skip");
    spans[i] = span;
    frag.append(span);
    lineOf[i] = line;
    colOf[i] = col;
    if (ch === "\n") {
      frag.append("\n"); // the line break itself, outside the character's element
      lineStarts.push(i + 1);
      line += 1;
      col = 1;
    } else {
      col += 1;
    }
  }
  textBox.append(frag);

  // --- colours ------------------------------------------------------------------------------
  function surprisalColour(logprob) {
    if (Number.isNaN(logprob)) return "";
    const t = Math.min(1, bits(logprob) / SURPRISAL_CAP);
    return `hsl(4, 80%, ${(100 - 52 * t).toFixed(1)}%)`;
  }
  function unitColour(code) {
    if (code === NO_VALUE) return "";
    const t = Math.abs(code) / 127;
    const hue = code < 0 ? 212 : 4;
    return `hsl(${hue}, 80%, ${(100 - 50 * t).toFixed(1)}%)`;
  }

  const picker = document.getElementById("picker");
  const legendLo = document.getElementById("legend-lo");
  const legendHi = document.getElementById("legend-hi");
  const legendRamp = document.getElementById("legend-ramp");
  const about = document.getElementById("about");
  let unit = -1; // the unit shading the text, -1 for surprisal

  function paint() {
    if (unit < 0) {
      for (let i = 0; i < n; i++) spans[i].style.backgroundColor = surprisalColour(seenLogprob[i]);
      legendLo.textContent = "0 bits";
      legendHi.textContent = `≥ ${SURPRISAL_CAP} bits`;
      legendRamp.style.background = "linear-gradient(to right, #fff, hsl(4, 80%, 48%))";
      about.textContent =
        "Each character is shaded by its surprisal, −log₂ p: how unexpected it was to the model " +
        "just before it saw it.";
      return;
    }
    const u = D.units[unit];
    const codes = unitCodes[unit];
    for (let i = 0; i < n; i++) spans[i].style.backgroundColor = unitColour(codes[i]);
    const peak = 127 * u.scale;
    legendLo.textContent = `−${peak.toFixed(2)}`;
    legendHi.textContent = `+${peak.toFixed(2)}`;
    legendRamp.style.background =
      "linear-gradient(to right, hsl(212, 80%, 50%), #fff, hsl(4, 80%, 50%))";
    const kind = u.name[0] === "c" ? "cell state" : "hidden state";
    const layer = u.name.slice(1, u.name.indexOf(":"));
    about.textContent =
      `Unit ${u.name}: the ${kind} of layer ${layer}, unit ${u.name.split(":")[1]}, ` +
      "right after reading each character (blue negative, red positive)." +
      (u.group === "--units" ? "" : ` Picked for its correlation with “${u.group}”.`);
  }

  // The picker: surprisal, then the picked units grouped by property, then the named ones.
  picker.append(el("option", { value: "-1", text: "surprisal (bits)" }));
  const groups = new Map();
  D.properties.forEach((p, k) => {
    const label = p.varies ? p.name : `${p.name} (constant in this text)`;
    const g = el("optgroup", { label: label });
    g.title = p.about;
    if (!p.varies) g.append(el("option", { disabled: "", text: "(nothing to track)" }));
    groups.set(p.name, [g, k]);
  });
  groups.set("--units", [el("optgroup", { label: "named with --units" }), -1]);
  D.units.forEach((u, i) => {
    const [g, k] = groups.get(u.group);
    const r = k >= 0 ? u.r[k] : null;
    const shown = r == null ? u.name : `${u.name}  (r = ${r >= 0 ? "+" : "−"}${Math.abs(r).toFixed(2)})`;
    g.append(el("option", { value: String(i), text: shown }));
  });
  for (const [g] of groups.values()) if (g.children.length) picker.append(g);
  picker.addEventListener("change", () => {
    unit = Number(picker.value);
    paint();
    show(current);
  });

  // --- the panel ----------------------------------------------------------------------------
  const panel = document.getElementById("panel");
  const hint = panel.querySelector(".hint");
  let current = -1; // the character the panel shows
  let pinned = -1; // the character chosen by a tap, a click or the keys

  function show(i) {
    if (current >= 0) spans[current].classList.remove("on");
    current = i;
    panel.replaceChildren();
    if (i < 0) {
      panel.append(hint);
      return;
    }
    spans[i].classList.add("on");
    const ch = chars[i];
    panel.append(el("h2", { text: `character ${group3(i + 1)} · line ${lineOf[i]}, column ${colOf[i]}` }));
    const lp = seenLogprob[i];
    if (Number.isNaN(lp)) {
      panel.append(
        el("p", { class: "seen" }, "Saw ", el("span", { class: "ch", text: visible(ch) }),
          ", which is not in the model's vocabulary: it was skipped and the state carries over."),
      );
    } else {
      panel.append(
        el("p", { class: "seen" }, "Saw ", el("span", { class: "ch", text: visible(ch) }), " p = ",
          el("span", { class: "num seen-p", text: Math.exp(lp).toFixed(4) }),
          `, ${bits(lp).toFixed(2)} bits`),
      );
      const seenId = vocabIndex.get(ch);
      const table = el("table", { class: "guesses" });
      let hit = false;
      for (let j = 0; j < K; j++) {
        const v = topIds[i * K + j];
        const code = topProbs[i * K + j];
        const row = el(
          "tr", { class: "guess", "data-v": String(v) },
          el("td", { class: "g-rank", text: String(j + 1) }),
          el("td", {}, el("span", { class: "g-ch", text: visible(D.vocab[v]) })),
          el("td", { class: "g-bar" }, el("span", { style: `width:${(100 * code) / D.prob_scale}%` })),
          el("td", { class: "g-p num", text: prob(code) }),
          el("td", { class: "g-mark", title: "the character seen" }),
        );
        if (v === seenId) {
          row.classList.add("hit");
          hit = true;
        }
        table.append(row);
      }
      panel.append(el("h2", { text: `the model's ${K} best guesses` }), table);
      if (!hit) panel.append(el("p", { class: "miss", text: `The seen character was not among them.` }));
    }
    if (unit >= 0) {
      const u = D.units[unit];
      const code = unitCodes[unit][i];
      const value = code === NO_VALUE ? "no state yet" : (code * u.scale).toFixed(3);
      const list = el("ul");
      D.properties.forEach((p, k) => {
        if (u.r[k] != null) list.append(el("li", { text: `${p.name}: r = ${u.r[k].toFixed(2)}` }));
      });
      panel.append(
        el("div", { class: "unitval" }, `${u.name} = `, el("span", { class: "num unit-v", text: value }),
          el("div", { text: "correlation over this text:" }), list),
      );
    }
  }

  function choose(i) {
    pinned = i;
    show(i);
    if (i >= 0) spans[i].scrollIntoView({ block: "nearest" });
  }

  // While the keys move through the text it scrolls, and the browser reports the character that
  // scrolled under a resting mouse as hovered: ignore hovers until the mouse itself moves.
  let keysFrom = null; // the mouse's screen position when the keys took over
  let mouseAt = { x: NaN, y: NaN };
  function hover(e) {
    if (keysFrom) {
      if (e.screenX === keysFrom.x && e.screenY === keysFrom.y) return;
      keysFrom = null;
    }
    const t = e.target.closest(".c");
    if (t && Number(t.dataset.i) !== current) show(Number(t.dataset.i));
  }
  textBox.addEventListener("mouseover", hover);
  textBox.addEventListener("mousemove", (e) => {
    mouseAt = { x: e.screenX, y: e.screenY };
    if (keysFrom) hover(e);
  });
  textBox.addEventListener("mouseleave", () => show(pinned));
  textBox.addEventListener("click", (e) => {
    const t = e.target.closest(".c");
    if (!t) return;
    const i = Number(t.dataset.i);
    pinned = pinned === i ? -1 : i;
    show(i);
    textBox.focus({ preventScroll: true });
  });
  // Up and down keep the column where the neighbouring line is long enough.
  function lineMove(from, delta) {
    const target = lineOf[from] - 1 + delta;
    if (target < 0 || target >= lineStarts.length) return from;
    const start = lineStarts[target];
    const end = target + 1 < lineStarts.length ? lineStarts[target + 1] - 1 : n - 1;
    return Math.min(start + colOf[from] - 1, end);
  }

  textBox.addEventListener("keydown", (e) => {
    const from = pinned >= 0 ? pinned : current;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const step = e.key === "ArrowRight" ? 1 : -1;
      choose(from < 0 ? 0 : Math.max(0, Math.min(n - 1, from + step)));
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      choose(from < 0 ? 0 : lineMove(from, e.key === "ArrowDown" ? 1 : -1));
    } else if (e.key === "Home") {
      choose(0);
    } else if (e.key === "End") {
      choose(n - 1);
    } else if (e.key === "Escape") {
      choose(-1);
    } else {
      return;
    }
    keysFrom = mouseAt;
    e.preventDefault();
  });

  paint();
})();
