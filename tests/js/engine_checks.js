// Checks of an exported web engine in Node for tests/test_export_js.py: node engine_checks.js DIR
// with one JSON job on stdin, {"check": NAME, ...}; prints one JSON object. DIR holds a folder
// export (charrnn.js, model.js). Inputs come on stdin so that any model name arrives intact.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");
const dir = path.resolve(process.argv[2]);
const job = JSON.parse(fs.readFileSync(0, "utf8"));
const { CharRNN } = require(path.join(dir, "charrnn.js"));
require(path.join(dir, "model.js"));

const errorOf = async (fn) => {
  try { await fn(); return null; } catch (e) { return `${e.name}: ${e.message}`; }
};

const checks = {
  // Several generate()/stream() calls at once: alone, under Promise.all, and interleaved by hand.
  async concurrent(m, { runs }) {
    const alone = [];
    for (const o of runs) alone.push((await m.generate(o)).text);
    m.feed(job.fed);
    const before = Array.from(m.logits());
    const together = (await Promise.all(runs.map((o) => m.generate(o)))).map((r) => r.text);
    const its = runs.map((o) => m.stream(o)[Symbol.asyncIterator]());
    const texts = runs.map(() => "");
    for (let live = its.length; live;) {
      live = 0;
      for (let i = 0; i < its.length; i++) {
        const r = await its[i].next();
        if (!r.done) { texts[i] += r.value.char; live++; }
      }
    }
    return { alone, together, interleaved: texts, fedKept: Array.from(m.logits()).every((x, i) => x === before[i]) };
  },
  // The first draw with no prime: its whole distribution, and the characters drawn over seeds.
  async first(m, { options, seeds }) {
    const out = [];
    for (const o of options) {
      const dist = {};
      for await (const c of m.stream({ ...o, length: 1, top: m.vocab.length, rngSeed: 0 })) {
        for (const g of c.top) dist[g.char] = g.probability;
      }
      const drawn = [];
      for (const s of seeds) drawn.push((await m.generate({ ...o, length: 1, rngSeed: s })).text);
      const { temperature, ...filters } = o;  // ml5's predict(temperature, options), nothing fed
      const predicted = {};
      for (const g of m.predict(temperature ?? 1, filters).probabilities) predicted[g.char] = g.probability;
      out.push({ dist, drawn, predicted });
    }
    return out;
  },
  // rngSeed values: the text each gives, or the error it is refused with.
  async seeds(m, { values, options }) {
    const out = [];
    for (const rngSeed of values) {
      let text = null;
      const error = await errorOf(async () => { text = (await m.generate({ ...options, rngSeed })).text; });
      out.push({ text, error, sync: error === null ? null : await errorOf(() => m.stream({ rngSeed })) });
    }
    return out;
  },
  // A model of any name: registered under it, loaded by it and as the only one, and the same from
  // the scripts of the single-file page run in a fresh global (as a browser runs them).
  async names(m, { name, scripts }) {
    const registry = globalThis.charrnnModels;
    const byName = await CharRNN.load(name);
    const text = (await byName.generate({ seed: "", length: 5, temperature: 0 })).text;
    const context = vm.createContext({ atob, WebAssembly, performance, setTimeout, setImmediate });
    for (const s of scripts) vm.runInContext(s, context);
    context.wanted = name;
    const single = await vm.runInContext(
      "charrnn.CharRNN.load(wanted).then((n) => [n.manifest.name, Object.keys(charrnnModels), charrnn.isRegistered(wanted)])",
      context,
    );
    // Nothing registered yet (a page before its model.js): the name is not mistaken for one.
    const fetched = [];
    const bare = vm.createContext({ atob, WebAssembly, performance, setTimeout, setImmediate,
      fetch: async (url) => { fetched.push(url); throw new Error("no network here"); } });
    vm.runInContext(scripts[0], bare);
    bare.wanted = name;
    const unloaded = await vm.runInContext(
      "[charrnn.isRegistered(wanted), charrnn.CharRNN.load(wanted).then(() => 'loaded', (e) => e.message)]",
      bare,
    );
    return {
      unloaded: [unloaded[0], await unloaded[1], fetched],
      keys: Object.keys(registry),
      proto: Object.getPrototypeOf(registry),
      byName: byName.manifest.name,
      only: m.manifest.name,
      isRegistered: require(path.join(dir, "charrnn.js")).isRegistered(name),
      text: [...text].length,
      single: JSON.parse(JSON.stringify(single)),
    };
  },
  // A voiced model: logits after each character under a tag (setTag, feed), greedy text and
  // scores under tags and strengths, and the refusals of bad tags.
  async voices(m, { logits, greedy, scores, refusals }) {
    const perStep = logits.map(({ tag, text }) => {
      m.setTag(tag);
      const rows = [];
      for (const ch of text) { m.feed(ch); rows.push(Array.from(m.logits())); }
      return rows;
    });
    m.setTag(null);
    const texts = [];
    for (const o of greedy) texts.push((await m.generate({ ...o, temperature: 0 })).text);
    const scored = scores.map(({ text, tag }) => m.score(text, { tag }).nats);
    const refused = [];
    for (const o of refusals) refused.push(await errorOf(() => m.generate({ seed: "", length: 3, ...o })));
    return { perStep, texts, scored, refused, voices: m.voices };
  },
};

(async () => {
  const m = await CharRNN.load();
  process.stdout.write(JSON.stringify(await checks[job.check](m, job)));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
