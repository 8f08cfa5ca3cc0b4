// The training curve on a <canvas>: loss (left axis, log scale) and held-out PSNR (right axis)
// against the step. Small on purpose: two polylines, their axes and a legend.
const LOSS_COLOUR = "#c2410c";
const PSNR_COLOUR = "#2458c6";

function range(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === hi) return [lo - 1, hi + 1];
  return [lo, hi];
}

function series(points, key, transform = (v) => v) {
  return points
    .filter((p) => typeof p[key] === "number" && Number.isFinite(p[key]) && (key !== "loss" || p[key] > 0))
    .map((p) => [p.step, transform(p[key])]);
}

export function drawCurve(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = Math.round((width * 3) / 8);
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const loss = series(points, "loss", Math.log10);
  const psnr = series(points, "psnr");
  if (!loss.length && !psnr.length) return false;

  const pad = { left: 52, right: 52, top: 24, bottom: 30 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const [x0, x1] = range([...loss, ...psnr].map((p) => p[0]));
  const x = (step) => pad.left + ((step - x0) / (x1 - x0)) * plotW;

  ctx.font = "12px system-ui, sans-serif";
  ctx.strokeStyle = "#c9ced4";
  ctx.strokeRect(pad.left, pad.top, plotW, plotH);
  ctx.fillStyle = "#5f6872";
  ctx.textAlign = "center";
  ctx.fillText(`step ${Math.round(x0)}`, pad.left + 30, height - 10);
  ctx.fillText(`${Math.round(x1)}`, pad.left + plotW - 10, height - 10);

  const line = (data, colour, side, label, fmt) => {
    if (!data.length) return;
    const [y0, y1] = range(data.map((p) => p[1]));
    const y = (v) => pad.top + plotH - ((v - y0) / (y1 - y0)) * plotH;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    data.forEach(([s, v], i) => (i ? ctx.lineTo(x(s), y(v)) : ctx.moveTo(x(s), y(v))));
    ctx.stroke();
    ctx.fillStyle = colour;
    ctx.textAlign = side === "left" ? "right" : "left";
    const tx = side === "left" ? pad.left - 6 : pad.left + plotW + 6;
    ctx.fillText(fmt(y1), tx, pad.top + 10);
    ctx.fillText(fmt(y0), tx, pad.top + plotH);
    ctx.textAlign = side === "left" ? "left" : "right";
    ctx.fillText(label, side === "left" ? pad.left : pad.left + plotW, pad.top - 8);
  };
  line(loss, LOSS_COLOUR, "left", "— loss (log)", (v) => (10 ** v).toPrecision(2));
  line(psnr, PSNR_COLOUR, "right", "— PSNR (dB)", (v) => v.toFixed(1));
  return true;
}
