/* charrnn playground, the Look inside view: a pasted text read by the model (/v1/score), each
 * character shaded by its surprisal, and the model's top guesses for the character under the mouse
 * (or the keys). The light version of `charrnn viz`: no units, no saved page.
 * Needs playground.js first (window.charrnnPlayground).
 */
"use strict";

(function () {
  const { $, el, visible, group3, api, failed, clearError, modelName } = window.charrnnPlayground;
  const INSIDE_CHARS = 20000; // longest text sent to /v1/score (its answer is ~100 bytes a character)
  const SURPRISAL_CAP = 8; // bits at which the shading is darkest
  const bits = (nats) => nats / Math.LN2;
  const text = $("text"); // the Write view's text
  const source = $("inside-text");
  const status = $("inside-status");
  const reading = $("reading");
  const box = $("chars");
  const panel = $("panel");
  const hint = panel.querySelector(".hint");
  let chars = []; // the text's code points, as the server counts positions
  let records = new Map(); // position → {char, nats, top}
  let spans = [];
  let currentAt = -1; // the character the panel shows
  let pinned = -1; // the one chosen by a tap, a click or the keys
  let pending = null;

  function clear() {
    reading.hidden = true;
    box.replaceChildren();
    spans = [];
    chars = [];
    records = new Map();
    currentAt = pinned = -1;
    status.textContent = "";
  }

  // A view opened with nothing pasted starts from what was written.
  function shown() {
    if (!source.value && text.value) source.value = text.value;
  }

  async function look() {
    if (pending) pending.abort();
    clearError();
    const all = Array.from(source.value);
    if (!all.length) {
      status.textContent = "Paste a text first.";
      return;
    }
    const sent = all.slice(0, INSIDE_CHARS);
    const ctl = new AbortController();
    pending = ctl;
    status.textContent = `Reading ${group3(sent.length)} characters…`;
    try {
      const body = {
        model: modelName(),
        text: sent.join(""),
        per_char: true,
        top_k: 5,
        unknown: "skip", // a pasted text may hold anything: unknown characters are marked, not refused
      };
      const result = await (await api("v1/score", body, ctl.signal)).json();
      if (pending !== ctl) return;
      draw(sent, result, all.length);
    } catch (e) {
      if (pending === ctl) status.textContent = "";
      failed(e, look);
    } finally {
      if (pending === ctl) pending = null;
    }
  }

  // The status line: what was read, its bpc, the characters skipped (each shown as a chip, so
  // a skipped digit or dash is not mistaken for punctuation of the sentence).
  function summary(result, total) {
    status.replaceChildren(`${group3(result.chars)} characters read`);
    if (result.bpc != null) {
      status.append(" · ", el("b", { text: `${result.bpc.toFixed(3)} bits per character` }),
        ` (perplexity ${result.perplexity.toFixed(2)})`);
    }
    const unknown = Object.entries(result.unknown_chars || {});
    if (unknown.length) {
      status.append(` · ${group3(result.unknown)} not in the model's vocabulary, skipped:`);
      for (const [c, k] of unknown) {
        status.append(" ", el("span", { class: "ch", text: visible(c) }), k > 1 ? `×${k}` : "");
      }
    }
    status.append(".");
    if (total > chars.length) {
      const sent = `${group3(chars.length)} of ${group3(total)}`;
      status.append(` Only the first ${sent} characters were sent.`);
    }
  }

  function draw(sent, result, total) {
    clear();
    chars = sent;
    for (const r of result.per_char || []) records.set(r.i, r);
    const frag = document.createDocumentFragment();
    spans = chars.map((ch, i) => {
      const span = el("span", { class: "c", "data-i": String(i) });
      span.textContent = ch === "\n" ? "↵" : ch;
      if (ch === "\n") span.classList.add("nl");
      const r = records.get(i);
      if (r) span.style.setProperty("--s", Math.min(1, bits(r.nats) / SURPRISAL_CAP).toFixed(3));
      else span.classList.add("skip");
      frag.append(span);
      if (ch === "\n") frag.append("\n"); // the line break itself, outside the character's element
      return span;
    });
    box.append(frag);
    summary(result, total);
    reading.hidden = false;
    show(-1);
  }

  function show(i) {
    if (currentAt >= 0 && spans[currentAt]) spans[currentAt].classList.remove("on");
    currentAt = i;
    panel.replaceChildren();
    if (i < 0) {
      panel.append(hint);
      return;
    }
    spans[i].classList.add("on");
    const ch = chars[i];
    const r = records.get(i);
    panel.append(el("h2", { text: `character ${group3(i + 1)} of ${group3(chars.length)}` }));
    const seen = el("p", { class: "seen" }, "Saw ", el("span", { class: "ch", text: visible(ch) }));
    panel.append(seen);
    if (!r) {
      seen.append(", which is not in the model's vocabulary: it was skipped and the model read on.");
      return;
    }
    seen.append(" p = ", el("span", { class: "num seen-p", text: Math.exp(-r.nats).toFixed(4) }),
      `, ${bits(r.nats).toFixed(2)} bits`);
    const table = el("table", { class: "guesses" });
    let hit = false;
    r.top.forEach(([guess, p], k) => {
      const row = el("tr", { class: "guess", "data-ch": guess },
        el("td", { class: "g-rank", text: String(k + 1) }),
        el("td", {}, el("span", { class: "g-ch", text: visible(guess) })),
        el("td", { class: "g-bar" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` })),
        el("td", { class: "g-p num", text: p.toFixed(4) }),
        el("td", { class: "g-mark", title: "the character seen" }),
      );
      if (guess === ch) {
        row.classList.add("hit");
        hit = true;
      }
      table.append(row);
    });
    panel.append(el("h2", { text: `the model's ${r.top.length} best guesses` }), table);
    if (!hit) panel.append(el("p", { class: "miss", text: "The character seen was not among them." }));
  }

  function choose(i) {
    pinned = i;
    show(i);
    if (i >= 0) spans[i].scrollIntoView({ block: "nearest" });
  }

  // While the keys move through the text it scrolls, and the browser reports the character that
  // scrolled under a resting mouse as hovered: hovers are ignored until the mouse itself moves.
  let keysFrom = null; // the mouse's screen position when the keys took over
  let mouseAt = { x: NaN, y: NaN };
  function hover(e) {
    if (keysFrom) {
      if (e.screenX === keysFrom.x && e.screenY === keysFrom.y) return;
      keysFrom = null;
    }
    const t = e.target.closest(".c");
    if (t && Number(t.dataset.i) !== currentAt) show(Number(t.dataset.i));
  }
  box.addEventListener("mouseover", hover);
  window.addEventListener("mousemove", (e) => {
    mouseAt = { x: e.screenX, y: e.screenY }; // anywhere: the mouse may rest outside the text
    if (keysFrom && box.contains(e.target)) hover(e);
  });
  box.addEventListener("mouseleave", () => show(pinned));
  box.addEventListener("click", (e) => {
    const t = e.target.closest(".c");
    if (!t) return;
    const i = Number(t.dataset.i);
    pinned = pinned === i ? -1 : i;
    show(i);
  });
  box.addEventListener("keydown", (e) => {
    if (!spans.length) return;
    const from = pinned >= 0 ? pinned : currentAt;
    const last = spans.length - 1;
    if (e.key === "ArrowRight") choose(from < 0 ? 0 : Math.min(last, from + 1));
    else if (e.key === "ArrowLeft") choose(from < 0 ? 0 : Math.max(0, from - 1));
    else if (e.key === "Home") choose(0);
    else if (e.key === "End") choose(last);
    else if (e.key === "Escape") choose(-1);
    else return;
    keysFrom = mouseAt;
    e.preventDefault();
  });
  $("look").addEventListener("click", look);
  $("use-writing").addEventListener("click", () => {
    source.value = text.value;
    look();
  });
  source.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      look();
    }
  });

  // Another model's shading would mislead: it goes when the model changes.
  $("model").addEventListener("change", clear);
  $("inside").addEventListener("shown", shown);
})();
