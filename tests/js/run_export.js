// Drive an exported web engine from Node for the tests: node run_export.js DIR BACKEND JOB
// JOB (JSON): {"ids": [...], "greedy": {"seed": "...", "length": N}, "score": "text"}
// Prints one JSON object: backend, logits per position of ids (from the zero state), greedy text,
// score. Loads the folder's binary weights (model.json + model.bin), as a hosted page does.
"use strict";
const fs = require("fs");
const path = require("path");
const [dir, backend, job] = process.argv.slice(2);
const { CharRNN } = require(path.resolve(dir, "charrnn.js"));
(async () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const data = fs.readFileSync(path.join(dir, manifest.weights.file));
  const model = await CharRNN.load({ manifest, data }, { backend });
  const spec = JSON.parse(job);
  const out = { backend: model.backend, logits: [] };
  model.reset();
  for (const id of spec.ids || []) out.logits.push(Array.from(model._step(id)));
  if (spec.greedy) {
    const r = await model.generate({ ...spec.greedy, temperature: 0 });
    out.greedy = r.text;
    out.finishReason = r.finishReason;
  }
  if (spec.score != null) out.score = model.score(spec.score);
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
