// The playground: onnxruntime-web runs arrayml's exported training step, one graph run per step,
// and the exported inference graph draws the decision boundary with the current weights.
// Everything it holds is in window.playground for scripts (the browser test replays it in Python).

import { Batches, DATASETS, EXTENT, POINTS, STREAMS, initialValue, makeDataset, mulberry32, streamSeed } from "./data.js";
import { GRID, drawBoundary, drawLoss } from "./draw.js";

const $ = (id) => document.getElementById(id);
const here = new URL(".", import.meta.url);
const root = new URL("..", here);
const LABELS = { relu: "ReLU", tanh: "tanh", sgd: "SGD momentum", adam: "Adam" };

/** A failure the page names: what failed (a file, the runtime) and why. */
class NamedFailure extends Error {}

const app = {
  manifest: null,
  ort: null,
  sessions: new Map(), // graph file -> Promise<InferenceSession>
  net: null, // the network's manifest entry
  seed: 1,
  dataset: "spiral",
  lr: null, // the last valid rate (a number) or null while the field holds no valid one
  lrText: "",
  data: null,
  batches: null,
  tensors: {}, // the step's state inputs by name: params/..., opt_state/...
  initial: {},
  step: 0,
  losses: [],
  rates: [], // [first step, rate] each time the rate changed (the batches follow from the seed)
  full: [], // [step, loss over all points]
  lastEval: null,
  running: false,
  busy: Promise.resolve(), // one graph run at a time (a session does not run twice at once)
  speed: { steps: 0, since: 0, value: null },
  error: null,
  generation: 0, // bumped by every reset, so a run started before it does not write after it
};

// ------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------

function showError(message) {
  app.error = message;
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  app.running = false;
  updateButtons();
  setStatus("Stopped: see the message above.");
}

function clearError() {
  app.error = null;
  $("error").hidden = true;
}

function setStatus(text) {
  $("status").textContent = text;
}

function fieldMessage(id, message) {
  const p = $(id);
  p.textContent = message || "";
  p.hidden = !message;
  p.previousElementSibling?.querySelector?.("input")?.setAttribute("aria-invalid", message ? "true" : "false");
}

// ------------------------------------------------------------------------------------------
// The runtime and the graphs
// ------------------------------------------------------------------------------------------

async function startRuntime(manifest) {
  const what = `The WebAssembly runtime (onnxruntime-web ${manifest.onnxruntime_web_version}, ` +
    `${manifest.ort_files.join(", ")}) could not start`;
  try {
    const ort = await import(new URL(manifest.ort_files[0], root).href);
    ort.env.wasm.wasmPaths = new URL("ort/", root).href; // never a CDN
    ort.env.wasm.numThreads = 1; // multi-threaded WebAssembly needs cross-origin isolation
    ort.env.wasm.proxy = false;
    ort.env.logLevel = "error";
    const bytes = Uint8Array.from(atob(manifest.runtime_check), (c) => c.charCodeAt(0));
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const out = await session.run({ x: new ort.Tensor("float32", Float32Array.of(3), [1]) });
    if (out.y.data[0] !== 3) throw new Error(`a one-node check graph returned ${out.y.data[0]} for 3`);
    await session.release();
    return ort;
  } catch (err) {
    throw new NamedFailure(`${what}: ${err?.message ?? err}`);
  }
}

function loadGraph(file, kind) {
  if (!app.sessions.has(file)) {
    const loading = (async () => {
      let response;
      try {
        response = await fetch(new URL(file, root));
      } catch (err) {
        throw new NamedFailure(`Could not load the ${kind} graph ${file}: ${err?.message ?? err}`);
      }
      if (!response.ok) {
        throw new NamedFailure(`Could not load the ${kind} graph ${file}: HTTP ${response.status} ` +
          `${response.statusText || "error"} (the page's build is incomplete: docs/playground/build.py makes it)`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      try {
        return await app.ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      } catch (err) {
        throw new NamedFailure(`Could not load the ${kind} graph ${file}: onnxruntime-web refused it ` +
          `(${bytes.length} bytes): ${err?.message ?? err}`);
      }
    })();
    loading.catch(() => app.sessions.delete(file)); // a later try fetches again
    app.sessions.set(file, loading);
  }
  return app.sessions.get(file);
}

/** Run `fn` after every graph run queued before it (a session runs one call at a time). */
function exclusive(fn) {
  const result = app.busy.then(fn);
  app.busy = result.catch(() => {});
  return result;
}

// ------------------------------------------------------------------------------------------
// State: data, initial weights, batches
// ------------------------------------------------------------------------------------------

function stateInputs(net) {
  return net.step.inputs.filter((s) => s.name.startsWith("params/") || s.name.startsWith("buffers/") ||
    s.name.startsWith("opt_state/"));
}

function resetState() {
  app.generation += 1;
  app.running = false;
  const net = app.net;
  app.data = makeDataset(app.dataset, app.seed);
  app.batches = new Batches(app.seed, POINTS, app.manifest.batch_size);
  const rand = mulberry32(streamSeed(app.seed, STREAMS.weights));
  app.tensors = {};
  app.initial = {};
  for (const spec of stateInputs(net)) {
    if (!spec.init) throw new NamedFailure(`The manifest gives no initial value for the step's input ${spec.name}`);
    const values = initialValue(spec, rand);
    app.initial[spec.name] = values.slice();
    app.tensors[spec.name] = new app.ort.Tensor(spec.dtype, values, spec.shape);
  }
  app.step = 0;
  app.losses = [];
  app.rates = [];
  app.full = [];
  app.lastEval = null;
  app.speed = { steps: 0, since: performance.now(), value: null };
}

function parseRate(text) {
  const trimmed = String(text).trim();
  const value = trimmed === "" ? NaN : Number(trimmed);
  if (!Number.isFinite(value) || value <= 0) {
    return { error: `The learning rate must be a positive finite number; got ${JSON.stringify(String(text))}. ` +
      "Nothing was sent to the graph." };
  }
  return { value };
}

function parseSeed(text) {
  const trimmed = String(text).trim();
  const value = Number(trimmed);
  if (trimmed === "" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    return { error: `The seed must be a whole number from 0 to 4294967295; got ${JSON.stringify(String(text))}.` };
  }
  return { value };
}

// ------------------------------------------------------------------------------------------
// Training and evaluation
// ------------------------------------------------------------------------------------------

async function trainOne(session, generation) {
  if (app.lr === null) throw new NamedFailure("No valid learning rate: the step was not run.");
  const B = app.manifest.batch_size;
  const indices = app.batches.next();
  const x = new Float32Array(2 * B);
  const y = new BigInt64Array(B);
  for (let i = 0; i < B; i++) {
    const k = indices[i];
    x[2 * i] = app.data.x[2 * k];
    x[2 * i + 1] = app.data.x[2 * k + 1];
    y[i] = BigInt(app.data.y[k]);
  }
  const lrSpec = app.net.step.inputs.find((s) => s.name === "lr");
  const lrData = lrSpec.dtype === "float64" ? Float64Array.of(app.lr) : Float32Array.of(app.lr);
  const feeds = {
    ...app.tensors,
    x: new app.ort.Tensor("float32", x, [B, 2]),
    y: new app.ort.Tensor("int64", y, [B]),
    lr: new app.ort.Tensor(lrSpec.dtype, lrData, []),
  };
  const out = await session.run(feeds);
  if (generation !== app.generation) return; // reset while this step ran: drop it
  for (const name of Object.keys(app.tensors)) {
    const next = out[`new_${name}`];
    if (!next) throw new NamedFailure(`The training step returned no new_${name}`);
    app.tensors[name] = next;
  }
  const loss = Number(out.loss.data[0]);
  app.losses.push(loss);
  if (!app.rates.length || app.rates[app.rates.length - 1][1] !== app.lr) app.rates.push([app.step, app.lr]);
  app.step += 1;
  app.speed.steps += 1;
}

/** Run `n` training steps back to back (no drawing in between); the seconds they took. */
function train(n) {
  return exclusive(async () => {
    const session = await loadGraph(app.net.step.file, "training-step");
    const generation = app.generation;
    const t0 = performance.now();
    for (let i = 0; i < n && generation === app.generation; i++) await trainOne(session, generation);
    return (performance.now() - t0) / 1000;
  });
}

/** The inference graph on the grid and on the data points, with the current weights. */
function evaluate() {
  return exclusive(async () => {
    const session = await loadGraph(app.net.infer.file, "inference");
    const generation = app.generation;
    const cells = GRID * GRID;
    const x = new Float32Array(2 * (cells + POINTS));
    for (let r = 0; r < GRID; r++) {
      for (let c = 0; c < GRID; c++) {
        const i = r * GRID + c;
        x[2 * i] = -EXTENT + (2 * EXTENT * (c + 0.5)) / GRID;
        x[2 * i + 1] = EXTENT - (2 * EXTENT * (r + 0.5)) / GRID;
      }
    }
    x.set(app.data.x, 2 * cells);
    const feeds = { x: new app.ort.Tensor("float32", x, [cells + POINTS, 2]) };
    for (const spec of app.net.infer.inputs) {
      if (spec.name === "x") continue;
      const tensor = app.tensors[spec.name];
      if (!tensor) throw new NamedFailure(`The inference graph takes ${spec.name}, which the training step does not hold`);
      feeds[spec.name] = tensor;
    }
    const out = await session.run(feeds);
    if (generation !== app.generation) return null;
    const probs = out[app.net.infer.outputs[0].name].data; // (N, 2): the probability of each class
    const p1 = new Float32Array(cells);
    for (let i = 0; i < cells; i++) p1[i] = probs[2 * i + 1];
    let loss = 0;
    let right = 0;
    for (let k = 0; k < POINTS; k++) {
      const p = probs[2 * (cells + k) + app.data.y[k]];
      loss -= Math.log(Math.max(p, 1e-30));
      right += p > 0.5 ? 1 : 0;
    }
    app.lastEval = { step: app.step, p1, loss: loss / POINTS, accuracy: right / POINTS };
    if (app.full.length === 0 || app.full[app.full.length - 1][0] !== app.step) app.full.push([app.step, loss / POINTS]);
    return app.lastEval;
  });
}

// ------------------------------------------------------------------------------------------
// Drawing and controls
// ------------------------------------------------------------------------------------------

function fmt(v, digits = 4) {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);
}

function render() {
  drawBoundary($("boundary"), app.lastEval?.p1 ?? null, app.data);
  drawLoss($("loss"), app.losses, app.full);
  $("stat-step").textContent = String(app.step);
  $("stat-epoch").textContent = (app.step * app.manifest.batch_size / POINTS).toFixed(1);
  $("stat-loss").textContent = fmt(app.losses[app.losses.length - 1]);
  $("stat-full").textContent = fmt(app.lastEval?.loss);
  $("stat-acc").textContent = app.lastEval ? `${(100 * app.lastEval.accuracy).toFixed(1)} %` : "–";
  $("stat-speed").textContent = app.speed.value === null ? "–" : app.speed.value.toFixed(0);
  if (app.error === null) {
    const where = `${app.net.id} on ${app.dataset === "xor" ? "XOR" : app.dataset}, seed ${app.seed}`;
    setStatus(app.running ? `Training ${where}…`
      : `${app.step ? "Paused" : "Ready"} at step ${app.step}: ${where}.`);
  }
}

async function refresh() {
  try {
    await evaluate();
    render();
  } catch (err) {
    fail(err);
  }
}

function fail(err) {
  showError(err instanceof NamedFailure ? err.message : `Unexpected error: ${err?.message ?? err}`);
}

function updateButtons() {
  const ready = app.net !== null && app.ort !== null && app.error === null;
  $("run").disabled = !ready || app.lr === null;
  $("run").textContent = app.running ? "Pause" : "Start";
  $("run").classList.toggle("running", app.running);
  $("step").disabled = !ready || app.lr === null || app.running;
  $("reset").disabled = !ready;
}

const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

async function loop() {
  const generation = app.generation;
  app.speed = { steps: 0, since: performance.now(), value: app.speed.value };
  try {
    let drawn = 0;
    while (app.running && generation === app.generation) {
      const t0 = performance.now();
      while (app.running && generation === app.generation && performance.now() - t0 < 40) await train(1);
      const now = performance.now();
      if (now - app.speed.since > 500) {
        app.speed.value = (1000 * app.speed.steps) / (now - app.speed.since);
        app.speed = { steps: 0, since: now, value: app.speed.value };
      }
      if (now - drawn > 120) {  // the boundary a few times a second; the steps in between
        await evaluate();
        drawn = now;
      }
      render();
      await frame();
    }
  } catch (err) {
    fail(err);
    return;
  }
  if (generation === app.generation) render();
}

function start() {
  if (app.running || app.error !== null) return;
  if (app.lr === null) throw new NamedFailure("No valid learning rate: training was not started.");
  app.running = true;
  updateButtons();
  loop();
}

function pause() {
  const was = app.running;
  app.running = false;
  updateButtons();
  if (was && app.net) render();
}

/** Back to step 0 (new data, weights and batches from the seed); training goes on if it ran. */
async function restart(resume = app.running) {
  pause();
  await exclusive(async () => {});
  resetState();
  await refresh();
  updateButtons();
  if (resume && app.lr !== null && app.error === null) start();
}

function fillSelect(select, values, label, current) {
  select.replaceChildren(...values.map((v) => {
    const option = document.createElement("option");
    option.value = v;
    option.textContent = label(v);
    option.selected = v === current;
    return option;
  }));
}

function networkFromSelects() {
  const id = `${$("layers").value}-${$("activation").value}-${$("optimizer").value}`;
  return app.manifest.networks.find((n) => n.id === id);
}

function showProvenance(net) {
  $("step-code").textContent = net.step.code;
  $("infer-code").textContent = net.infer.code;
  $("step-file").href = net.step.file;
  $("step-file").textContent = `(${net.step.file})`;
  $("infer-file").href = net.infer.file;
  $("infer-file").textContent = `(${net.infer.file})`;
  $("io-rows").replaceChildren(...net.step.inputs.map((s) => {
    const row = document.createElement("tr");
    const init = !s.init ? (s.name === "lr" ? "the field above" : "the batch")
      : s.init.kind === "normal" ? `N(0, ${s.init.std.toFixed(4)}²)` : "zeros";
    for (const text of [s.name, `(${s.shape.join(", ")})`, s.dtype, init]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

async function setNetwork(id) {
  const net = app.manifest.networks.find((n) => n.id === id);
  if (!net) {
    throw new Error(`unknown network ${JSON.stringify(id)}; expected one of ${app.manifest.networks.map((n) => n.id).join(", ")}`);
  }
  const resume = app.running;
  pause();
  await exclusive(async () => {});
  const previous = app.net;
  app.net = net;
  $("layers").value = net.layers.join("-");
  $("activation").value = net.activation;
  $("optimizer").value = net.optimizer;
  if (!previous || previous.optimizer !== net.optimizer) setRateText(String(net.default_lr));
  showProvenance(net);
  clearError();
  try {
    setStatus(`Loading ${net.step.file} and ${net.infer.file}…`);
    await Promise.all([loadGraph(net.step.file, "training-step"), loadGraph(net.infer.file, "inference")]);
    await restart(resume);
  } catch (err) {
    app.generation += 1; // nothing of the previous network is this one's state
    Object.assign(app, { lastEval: null, losses: [], full: [], rates: [], tensors: {}, initial: {}, step: 0 });
    if (app.data) render();
    fail(err);
    throw err;
  }
}

function setRateText(text) {
  $("lr").value = text;
  return acceptRate(text);
}

function acceptRate(text) {
  app.lrText = String(text);
  const parsed = parseRate(text);
  if (parsed.error) {
    app.lr = null;
    pause();
    fieldMessage("lr-msg", parsed.error);
  } else {
    app.lr = parsed.value;
    fieldMessage("lr-msg", null);
  }
  updateButtons();
  return parsed;
}

async function setSeed(value) {
  const parsed = parseSeed(value);
  if (parsed.error) {
    fieldMessage("seed-msg", parsed.error);
    throw new Error(parsed.error);
  }
  fieldMessage("seed-msg", null);
  app.seed = parsed.value;
  $("seed").value = String(parsed.value);
  await restart();
}

async function setDataset(name) {
  if (!DATASETS.includes(name)) throw new Error(`unknown data set ${JSON.stringify(name)}; expected one of ${DATASETS.join(", ")}`);
  app.dataset = name;
  for (const input of document.querySelectorAll("#dataset input")) input.checked = input.value === name;
  await restart();
}

function buildControls() {
  const m = app.manifest;
  const seg = $("dataset");
  seg.replaceChildren(...DATASETS.map((name) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "dataset";
    input.value = name;
    input.checked = name === app.dataset;
    input.addEventListener("change", () => setDataset(name).catch(fail));
    label.append(input, document.createTextNode(name === "xor" ? "XOR" : name));
    return label;
  }));
  const unique = (key) => [...new Set(m.networks.map(key))];
  fillSelect($("layers"), unique((n) => n.layers.join("-")), (v) => v, null);
  fillSelect($("activation"), unique((n) => n.activation), (v) => LABELS[v] ?? v, null);
  fillSelect($("optimizer"), unique((n) => n.optimizer), (v) => LABELS[v] ?? v, null);
  for (const id of ["layers", "activation", "optimizer"]) {
    $(id).addEventListener("change", () => setNetwork(networkFromSelects().id).catch(() => {}));
  }
  $("lr").addEventListener("input", (e) => acceptRate(e.target.value));
  $("seed").addEventListener("change", (e) => setSeed(e.target.value).catch(() => {}));
  $("reseed").addEventListener("click", () => setSeed(Math.floor(Math.random() * 1e6)).catch(() => {}));
  $("run").addEventListener("click", () => {
    if (app.running) pause();
    else {
      try {
        start();
      } catch (err) {
        fail(err);
      }
    }
  });
  $("step").addEventListener("click", () => train(1).then(refresh).catch(fail));
  $("reset").addEventListener("click", () => restart().catch(fail));
  $("arrayml-version").textContent = m.arrayml_version;
  $("ort-version").textContent = `${m.onnxruntime_web_version} (WebAssembly, 1 thread)`;
  $("batch-size").textContent = String(m.batch_size);
  $("build-command").textContent = m.build_command;
}

// ------------------------------------------------------------------------------------------
// For scripts
// ------------------------------------------------------------------------------------------

/** The indices of every batch trained on since step 0: drawn again from the seed, as they were. */
function batchesSoFar() {
  const again = new Batches(app.seed, POINTS, app.manifest.batch_size);
  return Array.from({ length: app.step }, () => again.next());
}

/** The rate of every step since step 0. */
function ratesSoFar() {
  const out = new Array(app.step);
  app.rates.forEach(([from, lr], i) => out.fill(lr, from, i + 1 < app.rates.length ? app.rates[i + 1][0] : app.step));
  return out;
}

function copyTensors(tensors) {
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data.slice()]));
}

const plain = (typed) => (typed instanceof BigInt64Array ? Array.from(typed, Number) : Array.from(typed));

const api = {
  /** Everything the page holds, typed arrays copied. */
  state() {
    return {
      seed: app.seed,
      dataset: app.dataset,
      network: app.net?.id ?? null,
      lr: app.lr,
      lrText: app.lrText,
      step: app.step,
      loss: app.losses.length ? app.losses[app.losses.length - 1] : null,
      losses: Float64Array.from(app.losses),
      fullLoss: app.lastEval?.loss ?? null,
      accuracy: app.lastEval?.accuracy ?? null,
      weights: copyTensors(app.tensors),
      initialWeights: Object.fromEntries(Object.entries(app.initial).map(([k, v]) => [k, v.slice()])),
      data: { x: app.data?.x.slice() ?? null, y: app.data?.y.slice() ?? null },
      batches: batchesSoFar(),
      rates: ratesSoFar(),
      running: app.running,
      error: app.error,
    };
  },
  /** `state()` with plain arrays (JSON), for test drivers that do not take typed arrays. */
  snapshot() {
    const s = api.state();
    const arrays = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, plain(v)]));
    return {
      ...s,
      losses: plain(s.losses),
      weights: arrays(s.weights),
      initialWeights: arrays(s.initialWeights),
      data: { x: plain(s.data.x), y: plain(s.data.y) },
      batches: s.batches.map(plain),
    };
  },
  manifest: () => app.manifest,
  networks: () => app.manifest.networks.map((n) => n.id),
  setSeed,
  setDataset,
  setNetwork,
  /** Set the rate as the field does: a value that is not a positive finite number is refused
   * (an Error with the page's message), and training stops until a valid one comes. */
  setLearningRate(value) {
    const parsed = setRateText(String(value));
    if (parsed.error) throw new Error(parsed.error);
    return parsed.value;
  },
  /** Run `n` steps (no drawing between them), then draw; the seconds the steps took. */
  async step(n = 1) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`step(n) takes a positive whole number, got ${n}`);
    if (app.lr === null) throw new Error($("lr-msg").textContent || "no valid learning rate");
    const seconds = await train(n);
    app.speed.value = n / seconds;
    await refresh();
    return seconds;
  },
  start,
  pause,
  reset: () => restart(),
  evaluate,
  ready: null,
};
window.playground = api;

async function main() {
  let manifest;
  try {
    const response = await fetch(new URL("manifest.json", root));
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    manifest = await response.json();
  } catch (err) {
    throw new NamedFailure(`Could not load the list of exported graphs (manifest.json): ${err?.message ?? err}`);
  }
  app.manifest = manifest;
  buildControls();
  app.ort = await startRuntime(manifest);
  setStatus("onnxruntime-web started.");
  await setNetwork(manifest.default);
  return api;
}

api.ready = main().catch((err) => {
  fail(err);
  throw err;
});
api.ready.catch(() => {}); // reported on the page; a script awaiting `ready` sees the rejection too
