/* charrnn playground, the Write view: Tab asks for sentence-bounded suggestions of the text
 * before the cursor (as rnn-writer asks torch-rnn-server) and shows them under the cursor; Continue
 * (Ctrl/Cmd+Enter) streams a continuation into the text as it arrives, and Stop (Esc) aborts it.
 * Needs playground.js first (window.charrnnPlayground).
 */
"use strict";

(function () {
  const { $, el, group3, api, failed, clearError, modelName, voiceFields, Problem } =
    window.charrnnPlayground;
  const PROMPT_CHARS = 4000; // an RNN's state forgets long before this; priming more only costs time
  const SUGGESTIONS = 5;

  const text = $("text");
  const writeStatus = $("write-status");
  const temperature = $("temperature");
  const lengthInput = $("length");
  const seedInput = $("seed");
  const continueButton = $("continue");
  const stopButton = $("stop");

  temperature.addEventListener("input", () => {
    $("temperature-value").textContent = Number(temperature.value).toFixed(2);
  });

  // The text before the cursor, cut to its last PROMPT_CHARS characters.
  function promptBefore(pos) {
    const before = text.value.slice(0, pos);
    return before.length > PROMPT_CHARS ? before.slice(before.length - PROMPT_CHARS) : before;
  }

  function intField(input, name) {
    const raw = input.value.trim();
    if (raw === "") return null;
    const v = Number(raw);
    const lo = Number(input.min || 0);
    const hi = input.max ? Number(input.max) : Number.MAX_SAFE_INTEGER;
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Problem(`${name}: a whole number from ${lo} to ${group3(hi)}, please`);
    }
    return v;
  }

  const Suggest = (function () {
    const list = $("suggestions");
    let items = [];
    let chosen = 0;
    let at = 0; // where the suggestions go: the selection when Tab was pressed
    let end = 0;
    let pending = null; // the AbortController of the request in flight

    function open() {
      return !list.hidden;
    }

    function dismiss() {
      if (open() || pending) writeStatus.textContent = "";
      if (pending) pending.abort();
      pending = null;
      list.hidden = true;
      list.replaceChildren();
      items = [];
      text.removeAttribute("aria-activedescendant");
    }

    function choose(k) {
      chosen = (k + items.length) % items.length;
      for (const [j, li] of [...list.children].entries()) {
        li.setAttribute("aria-selected", String(j === chosen));
      }
      text.setAttribute("aria-activedescendant", `suggestion-${chosen}`);
      list.children[chosen].scrollIntoView({ block: "nearest" });
    }

    function accept(k) {
      const piece = items[k];
      dismiss();
      text.focus();
      text.setSelectionRange(at, end);
      // insertText keeps the browser's undo history (Ctrl+Z takes a suggestion back); where it is
      // refused, setRangeText inserts without it.
      if (!document.execCommand("insertText", false, piece)) {
        text.setRangeText(piece, at, end, "end");
        text.dispatchEvent(new Event("input"));
      }
      writeStatus.textContent = "";
    }

    function show(texts) {
      items = texts;
      list.replaceChildren(
        ...texts.map((t, k) =>
          el("li", {
            role: "option",
            id: `suggestion-${k}`,
            "aria-selected": "false",
            text: t.replace(/\n/g, " ↵ "), // one line each: the list stays short
          }),
        ),
      );
      list.hidden = false;
      place();
      choose(0);
      const how = texts.length > 1 ? "↑ ↓ to choose, Enter to take one" : "Enter to take it";
      writeStatus.textContent = `${texts.length} suggestion${texts.length > 1 ? "s" : ""}: ${how}, Esc to drop.`;
    }

    // Under the cursor's line when it can be found, clamped inside the editor.
    function place() {
      const box = $("editor");
      const point = caretPoint(text, at);
      const y = Math.min(Math.max(point.y, 0), text.clientHeight) + text.offsetTop + 4;
      const x = Math.max(0, Math.min(point.x + text.offsetLeft, box.clientWidth - list.offsetWidth));
      list.style.top = `${y}px`;
      list.style.left = `${x}px`;
    }

    async function ask() {
      if (pending || Stream.running()) return;
      clearError();
      at = text.selectionStart;
      end = text.selectionEnd;
      const ctl = new AbortController();
      pending = ctl;
      writeStatus.textContent = "Asking the model for suggestions…";
      try {
        const body = {
          model: modelName(),
          prompt: promptBefore(at),
          n: SUGGESTIONS,
          max_tokens: 140,
          temperature: Number(temperature.value),
          until: "sentence",
          min_words: 3,
          max_words: 20,
          unknown: "skip",
          ...voiceFields(),
        };
        const answer = await (await api("v1/completions", body, ctl.signal)).json();
        if (pending !== ctl) return; // dismissed meanwhile
        pending = null;
        const texts = [...new Set(answer.choices.map((c) => c.text))].filter((t) => t.length);
        writeStatus.textContent = texts.length ? "" : "The model had nothing to suggest here.";
        if (texts.length) show(texts);
      } catch (e) {
        if (pending === ctl) pending = null;
        writeStatus.textContent = "";
        failed(e, () => {
          text.focus();
          text.setSelectionRange(at, end);
          ask();
        });
      }
    }

    // Tab belongs to the text box (as in rnn-writer). Esc then Tab lets the focus leave, so the
    // keyboard is never trapped.
    const LEAVE = "Tab now leaves the text box.";
    let tabLeaves = false;
    function key(e) {
      const leaving = tabLeaves;
      tabLeaves = false;
      if (leaving && writeStatus.textContent === LEAVE) writeStatus.textContent = "";
      if (open()) {
        if (e.key === "ArrowDown" || (e.key === "Tab" && !e.shiftKey)) choose(chosen + 1);
        else if (e.key === "ArrowUp" || (e.key === "Tab" && e.shiftKey)) choose(chosen - 1);
        else if (e.key === "Enter") accept(chosen);
        else if (e.key === "Escape") dismiss();
        else return false;
        return true;
      }
      if (e.key === "Escape" && pending) {
        dismiss();
        return true;
      }
      if (e.key === "Escape") {
        tabLeaves = true;
        writeStatus.textContent = LEAVE;
        return false;
      }
      if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
        if (leaving) return false;
        ask();
        return true;
      }
      return false;
    }

    // Typing, clicking elsewhere or leaving the box drops the suggestions (and a request for them):
    // they were for a cursor position that is gone.
    const drop = () => (open() || pending) && dismiss();
    text.addEventListener("input", drop);
    text.addEventListener("mousedown", drop);
    text.addEventListener("blur", drop);
    // A click on a suggestion must not take the focus (that would dismiss them first).
    list.addEventListener("mousedown", (e) => e.preventDefault());
    list.addEventListener("click", (e) => {
      const li = e.target.closest("li");
      if (li) accept([...list.children].indexOf(li));
    });
    window.addEventListener("resize", () => open() && place());

    return { key, dismiss, open };
  })();

  // Where character `pos` of a textarea is drawn, relative to its border box: a hidden copy of the
  // box with the same font and wrapping, with a marker at `pos`.
  const MIRRORED = [
    "boxSizing", "width", "borderTopWidth", "borderRightWidth", "borderBottomWidth", "borderLeftWidth",
    "paddingTop", "paddingRight", "paddingBottom", "paddingLeft", "fontFamily", "fontSize",
    "fontWeight", "fontStyle", "lineHeight", "letterSpacing", "wordSpacing", "tabSize", "textIndent",
  ];
  function caretPoint(area, pos) {
    const style = getComputedStyle(area);
    const mirror = el("div");
    for (const prop of MIRRORED) mirror.style[prop] = style[prop];
    Object.assign(mirror.style, {
      position: "absolute", visibility: "hidden", top: "0", left: "-9999px",
      whiteSpace: "pre-wrap", overflowWrap: "break-word", borderStyle: "solid",
      overflowY: area.scrollHeight > area.clientHeight ? "scroll" : "hidden",
    });
    mirror.textContent = area.value.slice(0, pos);
    const mark = el("span", { text: "\u200b" });
    mirror.append(mark);
    document.body.append(mirror);
    const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.4;
    const point = { x: mark.offsetLeft - area.scrollLeft, y: mark.offsetTop - area.scrollTop + line };
    mirror.remove();
    return point;
  }

  const Stream = (function () {
    let ctl = null;

    function running() {
      return ctl !== null;
    }

    function busy(on) {
      text.readOnly = on; // the text is being written at the cursor: typing would land in it
      text.setAttribute("aria-busy", String(on));
      continueButton.disabled = on;
      stopButton.disabled = !on;
    }

    // Server-sent events from a POST: read the body, split events on blank lines, yield each
    // `data:` payload parsed (EventSource cannot send a POST body).
    async function* events(response) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trim())
            .join("\n");
          if (data === "[DONE]") return;
          if (data) yield JSON.parse(data);
        }
        if (done) return;
      }
    }

    async function start() {
      if (ctl) return;
      clearError();
      Suggest.dismiss();
      let length;
      let seed;
      try {
        length = intField(lengthInput, "Length");
        seed = intField(seedInput, "Seed");
      } catch (e) {
        failed(e);
        return;
      }
      // A seed chosen here (not by the server) can be shown, so a continuation can be repeated.
      if (seed == null) seed = Math.floor(Math.random() * 2 ** 31);
      let at = text.selectionStart;
      text.setSelectionRange(at, at);
      const body = {
        model: modelName(),
        prompt: promptBefore(at),
        max_tokens: length || 400,
        temperature: Number(temperature.value),
        seed,
        stream: true,
        unknown: "skip",
        ...voiceFields(),
      };
      ctl = new AbortController();
      busy(true);
      let made = 0;
      let reason = null;
      writeStatus.textContent = `Continuing (seed ${seed})…`;
      try {
        const response = await api("v1/completions", body, ctl.signal);
        for await (const event of events(response)) {
          if (event.error) throw new Problem(event.error.message, 500, event.error.code);
          for (const choice of event.choices || []) {
            if (choice.text) {
              const end = at === text.value.length;
              text.setRangeText(choice.text, at, at, "end");
              at += choice.text.length;
              made += choice.text.length;
              if (end) text.scrollTop = text.scrollHeight; // follow the text as it grows
              text.dispatchEvent(new Event("input"));
            }
            if (choice.finish_reason) reason = choice.finish_reason;
          }
        }
        let why = "the server ended the stream early";
        if (reason) why = reason === "length" ? "reached the length" : "ended on its own";
        writeStatus.textContent = `Continued by ${group3(made)} characters (${why}; seed ${seed}).`;
      } catch (e) {
        if (e.name === "AbortError") {
          writeStatus.textContent = `Stopped after ${group3(made)} characters (seed ${seed}).`;
        } else {
          writeStatus.textContent = "";
          failed(e, start);
        }
      } finally {
        ctl = null;
        busy(false);
        // Back to writing, unless the focus went somewhere on purpose (the key prompt).
        const idle = [document.body, text, continueButton, stopButton, null];
        if (idle.includes(document.activeElement)) text.focus();
        text.setSelectionRange(at, at);
      }
    }

    // Aborting the fetch closes the connection; the server frees the stream at its next step.
    function stop() {
      if (ctl) ctl.abort();
    }

    // Ctrl/Cmd+Enter continues; Esc stops a continuation.
    function key(e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) start();
      else if (e.key === "Escape" && running()) stop();
      else return false;
      return true;
    }

    return { start, stop, running, key };
  })();

  continueButton.addEventListener("click", Stream.start);
  stopButton.addEventListener("click", Stream.stop);

  text.addEventListener("keydown", (e) => {
    if (Stream.key(e) || Suggest.key(e)) e.preventDefault();
  });
})();
