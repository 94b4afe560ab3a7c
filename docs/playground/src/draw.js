// The two pictures: the plane (the data over the network's prediction) and the loss curve.

import { EXTENT } from "./data.js";

/** The side of the grid the inference graph is evaluated on. */
export const GRID = 64;

const CLASS_RGB = [[234, 128, 32], [37, 99, 235]]; // orange (class 0), blue (class 1)
const PAPER = [250, 250, 249];
const INK = "#1f2937";
const MUTED = "#6b7280";
const RULE = "#e5e7eb";

/** A canvas drawn at the screen's pixel density: its 2-D context, scaled to CSS pixels. */
function context(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Number(canvas.getAttribute("width"));
  const height = Number(canvas.getAttribute("height"));
  if (canvas.dataset.ratio !== String(ratio)) {
    canvas.style.width = `${width}px`;
    canvas.style.aspectRatio = `${width} / ${height}`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.dataset.ratio = String(ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

let cells = null;

/** The data (points coloured by class) over `p1`, the probability of class 1 on the GRID × GRID
 * grid (row 0 at the top), or over a blank plane while there is none. */
export function drawBoundary(canvas, p1, data) {
  const { ctx, width, height } = context(canvas);
  ctx.clearRect(0, 0, width, height);
  if (p1) {
    cells ??= Object.assign(document.createElement("canvas"), { width: GRID, height: GRID });
    const cellCtx = cells.getContext("2d");
    const image = cellCtx.createImageData(GRID, GRID);
    for (let i = 0; i < GRID * GRID; i++) {
      const p = p1[i];
      const strength = 0.15 + 0.55 * Math.abs(2 * p - 1); // pale where the network is unsure
      const rgb = CLASS_RGB[p > 0.5 ? 1 : 0];
      for (let c = 0; c < 3; c++) image.data[4 * i + c] = Math.round(PAPER[c] + strength * (rgb[c] - PAPER[c]));
      image.data[4 * i + 3] = 255;
    }
    cellCtx.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(cells, 0, 0, width, height);
  } else {
    ctx.fillStyle = `rgb(${PAPER.join(",")})`;
    ctx.fillRect(0, 0, width, height);
  }
  const sx = (x) => ((x + EXTENT) / (2 * EXTENT)) * width;
  const sy = (y) => ((EXTENT - y) / (2 * EXTENT)) * height;
  ctx.strokeStyle = "rgba(31, 41, 55, 0.12)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(sx(0), 0);
  ctx.lineTo(sx(0), height);
  ctx.moveTo(0, sy(0));
  ctx.lineTo(width, sy(0));
  ctx.stroke();
  if (!data) return;
  for (let k = 0; k < data.y.length; k++) {
    const rgb = CLASS_RGB[data.y[k]];
    ctx.beginPath();
    ctx.arc(sx(data.x[2 * k]), sy(data.x[2 * k + 1]), 3.6, 0, 2 * Math.PI);
    ctx.fillStyle = `rgb(${rgb.join(",")})`;
    ctx.fill();
    ctx.lineWidth = 1.2;
    ctx.strokeStyle = "white";
    ctx.stroke();
  }
}

function niceStep(span, ticks) {
  const raw = span / ticks;
  const base = 10 ** Math.floor(Math.log10(raw));
  const m = raw / base;
  return base * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

/** The loss of every step (faint), its mean over the last 20 steps (bold), and the loss over all
 * points at the steps where it was evaluated (dots). */
export function drawLoss(canvas, losses, full) {
  const { ctx, width, height } = context(canvas);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 44, right: 12, top: 10, bottom: 28 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const steps = Math.max(losses.length, 10);
  let top = 0.8;
  for (const v of losses) if (Number.isFinite(v)) top = Math.max(top, Math.min(v, 5));
  for (const [, v] of full) if (Number.isFinite(v)) top = Math.max(top, Math.min(v, 5));
  const yStep = niceStep(top, 4);
  top = Math.ceil(top / yStep) * yStep;
  const X = (s) => pad.left + (s / steps) * w;
  const Y = (v) => pad.top + h - (Math.min(v, top) / top) * h;

  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = MUTED;
  ctx.strokeStyle = RULE;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let v = 0; v <= top + 1e-9; v += yStep) {
    ctx.beginPath();
    ctx.moveTo(pad.left, Math.round(Y(v)) + 0.5);
    ctx.lineTo(pad.left + w, Math.round(Y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(v.toFixed(yStep < 0.1 ? 2 : 1), pad.left - 6, Y(v));
  }
  const xStep = niceStep(steps, 5);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let s = 0; s <= steps; s += xStep) ctx.fillText(String(s), X(s), pad.top + h + 6);
  ctx.fillText("step", pad.left + w / 2, pad.top + h + 17);

  const ln2 = Math.log(2);
  ctx.setLineDash([4, 4]);
  ctx.strokeStyle = MUTED;
  ctx.beginPath();
  ctx.moveTo(pad.left, Y(ln2));
  ctx.lineTo(pad.left + w, Y(ln2));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.textAlign = "right";
  ctx.textBaseline = "bottom";
  ctx.fillText("ln 2: a coin toss", pad.left + w, Y(ln2) - 2);

  if (losses.length) {
    // at most two points per pixel column: each the mean of its bucket of steps
    const bucket = Math.max(1, Math.ceil(losses.length / (2 * w)));
    const line = (values, style, width) => {
      ctx.strokeStyle = style;
      ctx.lineWidth = width;
      ctx.beginPath();
      for (let start = 0; start < values.length; start += bucket) {
        const end = Math.min(start + bucket, values.length);
        let sum = 0;
        for (let i = start; i < end; i++) sum += values[i];
        const x = X((start + end) / 2 + 0.5);
        const y = Y(sum / (end - start));
        if (start) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
      }
      ctx.stroke();
    };
    const mean = new Float64Array(losses.length);
    let sum = 0;
    losses.forEach((v, i) => {
      sum += v;
      if (i >= 20) sum -= losses[i - 20];
      mean[i] = sum / Math.min(i + 1, 20);
    });
    line(losses, "rgba(37, 99, 235, 0.28)", 1);
    line(mean, "#1d4ed8", 2);
  }
  ctx.fillStyle = INK;
  const every = Math.max(1, Math.ceil(full.length / 60));
  full.forEach(([s, v], i) => {
    if (i % every && i !== full.length - 1) return;
    ctx.beginPath();
    ctx.arc(X(s), Y(v), 2.4, 0, 2 * Math.PI);
    ctx.fill();
  });
}
