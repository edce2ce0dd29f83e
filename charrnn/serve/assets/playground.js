/* charrnn playground: the page `charrnn serve` shows at /. Plain browser JavaScript, no libraries,
 * no requests beyond this server's API (/v1/models, /v1/completions, /v1/score).
 *
 * This file is the page's frame: the API calls (with the key, and the server's own error messages
 * on the error line), the model list, the tabs. Its views come after it: write.js (Tab suggestions
 * and streamed continuations) and inside.js (a text shaded by surprisal). They share the helpers
 * in window.charrnnPlayground. API paths are relative, so the page also works behind a proxy that
 * mounts the server on a path.
 */
"use strict";

(function () {
  const KEY_STORE = "charrnn.apiKey";

  const $ = (id) => document.getElementById(id);
  const { el, visible, group3 } = window.charrnnDom; // assets/dom.js, shared with charrnn viz

  // --- the error line -----------------------------------------------------------------------
  const errorLine = $("error");
  function showError(message) {
    errorLine.textContent = message;
    errorLine.hidden = false;
  }
  function clearError() {
    errorLine.hidden = true;
    errorLine.textContent = "";
  }

  // --- the API ------------------------------------------------------------------------------
  // A failure with a message for the user: the server's own (with its HTTP status) or the page's.
  class Problem extends Error {
    constructor(message, status = 0, code = null) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch {
      return ""; // storage can be off (private windows, file policies): the key lives in the field
    }
  }

  // POST (or GET when body is null) to the API; resolves to the Response when it is 2xx, throws a
  // Problem carrying the server's own message otherwise.
  async function api(path, body, signal) {
    const headers = {};
    const key = storedKey() || keyInput.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body != null) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method: body == null ? "GET" : "POST",
        headers,
        body: body == null ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new Problem(`could not reach the server (${e.message})`);
    }
    if (response.ok) return response;
    let message = `${response.status} ${response.statusText}`;
    let code = null;
    try {
      const err = (await response.json()).error;
      if (err && err.message) message = err.message;
      code = err ? err.code : null;
    } catch {
      // not JSON (a proxy's page): the status line says enough
    }
    throw new Problem(message, response.status, code);
  }

  // Every action ends here when it fails: a refused key opens the key prompt (and the action runs
  // again once a key is given), anything else goes on the error line. Aborts are not failures.
  let retry = null;
  function failed(e, again) {
    if (e.name === "AbortError") return;
    if (e instanceof Problem && e.status === 401) {
      retry = again;
      askForKey(storedKey() ? "The saved key was refused: enter the server's API key." : null);
      return;
    }
    showError(e instanceof Problem ? e.message : `something went wrong in the page: ${e.message}`);
    if (!(e instanceof Problem)) console.error(e);
  }

  // --- the API key --------------------------------------------------------------------------
  const keyForm = $("key-form");
  const keyInput = $("key");
  const keyNote = $("key-note");
  const KEY_NOTE = keyNote.textContent;

  function askForKey(note) {
    keyNote.textContent = note || KEY_NOTE;
    keyForm.hidden = false;
    keyInput.focus();
  }

  keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = keyInput.value.trim();
    try {
      localStorage.setItem(KEY_STORE, key);
    } catch {
      // kept in the field instead (api() reads it from there)
    }
    keyForm.hidden = true;
    clearError();
    const again = retry;
    retry = null;
    // The model list needs the key too; it may not have loaded yet (and may be what failed).
    if (models.length) {
      if (again) again();
    } else {
      loadModels().then(() => {
        if (again && again !== loadModels) again();
      });
    }
  });

  // --- the models ---------------------------------------------------------------------------
  let models = [];
  const picker = $("model");
  const facts = $("facts");

  function current() {
    return models.find((m) => m.id === picker.value) || models[0];
  }

  function describe(m) {
    const c = m.charrnn || {};
    facts.replaceChildren();
    const params =
      c.parameters >= 1e6 ? `${(c.parameters / 1e6).toFixed(2)}M` : group3(c.parameters || 0);
    facts.append(
      el("b", { text: `${(c.cell || "rnn").toUpperCase()} ${c.layers}×${c.hidden}` }),
      `, ${params} parameters, ${c.vocab_size} characters, trained on `,
      el("b", { text: c.corpus || "an unnamed corpus" }),
    );
    if (c.best_val_bpc != null) facts.append(` · best validation ${c.best_val_bpc.toFixed(3)} bpc`);
    document.title = `${m.id} · charrnn playground`;
  }

  async function loadModels() {
    try {
      const body = await (await api("v1/models", null)).json();
      // A voiced model's voices are listed beside it as MODEL:VOICE: the voice picker offers them.
      models = (body.data || []).filter((m) => !(m.charrnn && m.charrnn.voice));
    } catch (e) {
      facts.textContent = "The models could not be listed.";
      failed(e, loadModels);
      return;
    }
    if (!models.length) {
      facts.textContent = "This server holds no models.";
      return;
    }
    const was = picker.value;
    picker.replaceChildren(...models.map((m) => el("option", { value: m.id, text: m.id })));
    if (models.some((m) => m.id === was)) picker.value = was;
    // One model needs no picker: its name is enough (and is still labelled "Model").
    picker.hidden = models.length < 2;
    $("model-name").textContent = models.length < 2 ? models[0].id : "";
    $("model-name").hidden = models.length > 1;
    describe(current());
    showVoices(current());
    $("model-box").hidden = false;
  }

  picker.addEventListener("change", () => {
    describe(current());
    showVoices(current());
  });

  // --- the voice ----------------------------------------------------------------------------
  // A voiced model's voice: none, one of them, or a mix by weights; and the strength (1 is the
  // voice itself). Sent as `tag` and `tag_strength` with every request that writes.
  const voiceBox = $("voice-box");
  const voicePicker = $("voice");
  const mixBox = $("mix");
  const strength = $("strength");
  const MIX = "*"; // not a voice's name: names are letters, digits and _ . -

  function showVoices(m) {
    const names = (m && m.charrnn && m.charrnn.voices) || [];
    voiceBox.hidden = !names.length;
    voicePicker.replaceChildren(
      el("option", { value: "", text: "none" }),
      ...names.map((v) => el("option", { value: v, text: v })),
      ...(names.length > 1 ? [el("option", { value: MIX, text: "a mix…" })] : []),
    );
    mixBox.replaceChildren(
      ...names.map((v) => {
        const input = el("input", { type: "number", min: "0", step: "0.1", value: "1" });
        input.dataset.voice = v;
        input.setAttribute("aria-label", `weight of ${v}`);
        return el("label", {}, v, input);
      }),
    );
    voiceChanged();
  }

  function voiceChanged() {
    mixBox.hidden = voicePicker.value !== MIX;
    strength.disabled = voicePicker.value === "";
  }

  voicePicker.addEventListener("change", voiceChanged);

  // The request fields for the chosen voice ({} for none); the server checks the numbers.
  function voiceFields() {
    if (voiceBox.hidden || voicePicker.value === "") return {};
    let tag = voicePicker.value;
    if (tag === MIX) {
      tag = {};
      for (const input of mixBox.querySelectorAll("input")) {
        tag[input.dataset.voice] = Number(input.value);
      }
    }
    const s = strength.value === "" ? 1 : Number(strength.value);
    return { tag, tag_strength: s };
  }

  const modelName = () => (current() ? current().id : undefined);

  // --- the tabs -----------------------------------------------------------------------------
  const tabs = [$("tab-write"), $("tab-inside")];

  function selectTab(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    $(tab.getAttribute("aria-controls")).dispatchEvent(new Event("shown")); // for the view's own use
  }

  tabs.forEach((tab, k) => {
    tab.addEventListener("click", () => selectTab(tab));
    // The tab list is one stop for Tab; the arrows move between tabs (the ARIA tabs pattern).
    tab.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const next = tabs[(k + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      selectTab(next);
      next.focus();
      e.preventDefault();
    });
  });

  window.charrnnPlayground = {
    $, el, visible, group3, api, failed, clearError, modelName, voiceFields, Problem,
  };
  loadModels();
})();
