// Seeded random numbers, the four 2-D data sets, the initial weights and the batches: everything
// the page draws, from one seed, with nothing but this file. (It runs in Node too, for a look.)

/** mulberry32: a 32-bit state, one multiply-xorshift per draw; uniform floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of one stream (data, weights, batches) of a run seeded with `seed`: a mix of both,
 * so that changing the network does not change the data, nor the data the initial weights. */
export function streamSeed(seed, stream) {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export const STREAMS = { data: 0, weights: 1, batches: 2 };

/** A standard normal draw (Box-Muller on two uniforms; 1 − u keeps the logarithm finite). */
export function normal(rand) {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Points per data set (half of each class) and the square the page draws: [−EXTENT, EXTENT]². */
export const POINTS = 400;
export const EXTENT = 1.5;

const GENERATORS = {
  // Two arms, each turning 1.25 times around the origin, the second the first turned by π.
  spiral(rand, i, label, t) {
    const r = 0.08 + 0.92 * t;
    const angle = 1.25 * 2 * Math.PI * t + label * Math.PI;
    return [r * Math.cos(angle) + 0.035 * normal(rand), r * Math.sin(angle) + 0.035 * normal(rand)];
  },
  // A disc of radius 0.5 inside a ring of radius 0.8 to 1.1.
  circles(rand, i, label) {
    const r = label === 0 ? 0.5 * Math.sqrt(rand()) : 0.8 + 0.3 * rand();
    const angle = 2 * Math.PI * rand();
    return [r * Math.cos(angle), r * Math.sin(angle)];
  },
  // scikit-learn's two moons, centred and scaled to the square.
  moons(rand, i, label, t) {
    const angle = Math.PI * t;
    const [x, y] = label === 0 ? [Math.cos(angle), Math.sin(angle)] : [1 - Math.cos(angle), 0.5 - Math.sin(angle)];
    return [0.6 * (x - 0.5) + 0.05 * normal(rand), 0.6 * (y - 0.25) + 0.05 * normal(rand)];
  },
  // Uniform in the square, kept off the axes; the label is 1 where x and y have the same sign.
  xor(rand, i, label) {
    const away = () => 0.05 + 0.95 * rand();
    const sx = rand() < 0.5 ? -1 : 1;
    const sy = label === 1 ? sx : -sx;
    return [sx * away(), sy * away()];
  },
};

export const DATASETS = Object.keys(GENERATORS);

/** The data set `name` drawn from `seed`: {x: Float32Array(2·POINTS) row-major, y: Int32Array(POINTS)},
 * the classes interleaved (point 2k of class 0, point 2k + 1 of class 1). */
export function makeDataset(name, seed) {
  const generate = GENERATORS[name];
  if (!generate) throw new Error(`unknown data set ${JSON.stringify(name)}; expected one of ${DATASETS.join(", ")}`);
  const rand = mulberry32(streamSeed(seed, STREAMS.data));
  const x = new Float32Array(2 * POINTS);
  const y = new Int32Array(POINTS);
  const half = POINTS / 2;
  for (let i = 0; i < POINTS; i++) {
    const label = i % 2;
    const k = Math.floor(i / 2);
    const [a, b] = generate(rand, k, label, k / half);
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = label;
  }
  return { x, y };
}

/** Initial values of a graph input described by the build's manifest: `init` is
 * {kind: "normal", std} (Kaiming, as arrayml's Linear draws: N(0, 1/in) for the first layer,
 * N(0, 2/in) later) or {kind: "zeros"}; values drawn in the order the inputs are listed. */
export function initialValue(spec, rand) {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const Typed = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array }[spec.dtype];
  if (!Typed) throw new Error(`graph input ${spec.name}: dtype ${spec.dtype} is not handled by the page`);
  const data = new Typed(size);
  if (spec.init.kind === "normal") {
    for (let i = 0; i < size; i++) data[i] = spec.init.std * normal(rand);
  } else if (spec.init.kind !== "zeros") {
    throw new Error(`graph input ${spec.name}: unknown initialisation ${JSON.stringify(spec.init)}`);
  }
  return data;
}

/** The batches: each epoch a Fisher-Yates shuffle of the points, cut into batches of
 * `batchSize` (the last, smaller one dropped: the exported step takes exactly `batchSize`). */
export class Batches {
  constructor(seed, points, batchSize) {
    this.rand = mulberry32(streamSeed(seed, STREAMS.batches));
    this.points = points;
    this.batchSize = batchSize;
    this.order = new Int32Array(points);
    this.at = points; // start with a shuffle
  }

  next() {
    if (this.at + this.batchSize > this.points) {
      for (let i = 0; i < this.points; i++) this.order[i] = i;
      for (let i = this.points - 1; i > 0; i--) {
        const j = Math.floor(this.rand() * (i + 1));
        const swap = this.order[i];
        this.order[i] = this.order[j];
        this.order[j] = swap;
      }
      this.at = 0;
    }
    const batch = this.order.slice(this.at, this.at + this.batchSize);
    this.at += this.batchSize;
    return batch;
  }
}
