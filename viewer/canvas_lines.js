// Per-step line charts (the signals and the trainer losses) on one canvas: a
// components-v2 module, so that the page never loads plotly.js (docs/viewer.md).
//
// Python (viewer/canvas_lines.py) sends {title, steps, series: [{name, y, alerts}],
// alert_steps, focus, height_per}. One panel per series sharing the step axis; alerts are
// red crosses on their series and dotted lines across all panels; the focused step is a
// blue line. Out: trigger "step" (the step of the clicked point).

const M = { l: 56, r: 12, t: 24, b: 26, gap: 10 };
const css = `
.evolines { position: relative; font: 11px sans-serif; color: #333; user-select: none; }
.evolines canvas { display: block; cursor: pointer; }
.evolines .evolines-tip { position: absolute; display: none; pointer-events: none; background: #fff;
  border: 1px solid #bbb; border-radius: 3px; padding: 2px 5px; max-width: min(420px, 100%); z-index: 2;
  box-shadow: 0 1px 4px rgba(0,0,0,.2); }
`;

function ticks(lo, hi, n) {
  // "Nice" tick values (1, 2, 5 x 10^k) covering [lo, hi].
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  // a step below the floats' spacing at lo never moves v: bounded (a span of one ULP pushed until V8 gave up)
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && out.length <= 4 * n; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 1e4 || (a > 0 && a < 1e-3)) return v.toExponential(1);
  return Number(v.toPrecision(4)).toLocaleString("en-US");
}

class EvoLines {
  constructor(parent) {
    this.root = document.createElement("div");
    this.root.className = "evolines";
    const style = document.createElement("style");
    style.textContent = css;
    this.canvas = document.createElement("canvas");
    this.tip = document.createElement("div");
    this.tip.className = "evolines-tip";
    this.root.append(style, this.canvas, this.tip);
    parent.appendChild(this.root);
    this.root.evolines = this;  // tests read pixelOf() from here
    this.canvas.addEventListener("pointermove", (ev) => this.hover(ev));
    this.canvas.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
    this.canvas.addEventListener("click", (ev) => {
      const hit = this.nearest(ev);
      if (hit && this.api) this.api.setTriggerValue("step", hit.step);
    });
    this.resizer = new ResizeObserver(() => this.draw());
    this.resizer.observe(this.root);
  }

  update(spec, api) {
    this.spec = spec;
    this.api = api;
    this.draw();
  }

  layout() {
    const s = this.spec, w = Math.max(200, this.root.clientWidth || 600);
    const n = Math.max(1, s.series.length), h = M.t + M.b + n * s.height_per + (n - 1) * M.gap;
    const steps = s.steps, lo = steps.length ? Math.min(...steps, ...s.alert_steps) : 0;
    const hi = steps.length ? Math.max(...steps, ...s.alert_steps) : 1;
    const pad = hi > lo ? (hi - lo) * 0.03 : 1;
    return { w, h, x0: lo - pad, x1: hi + pad, pw: w - M.l - M.r };
  }

  sx(L, step) { return M.l + (step - L.x0) / (L.x1 - L.x0) * L.pw; }

  panel(L, i) {
    const top = M.t + i * (this.spec.height_per + M.gap);
    const ys = this.spec.series[i].y.filter((v) => v !== null && Number.isFinite(v));
    let lo = ys.length ? Math.min(...ys) : 0, hi = ys.length ? Math.max(...ys) : 1;
    // flat, or flat but for float rounding (0.7966666666666666 beside ...67: round AQ)
    if (!(hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi)))) {
      const half = Math.max(0.5, Math.abs(lo) * 0.05);  // ±0.5 was lost to rounding at 1e20: no line drawn
      lo -= half; hi += half;
    }
    const pad = (hi - lo) * 0.08, room = this.spec.series[i].better ? 2 : 1;  // a band free of data for the hint
    return { top, h: this.spec.height_per, lo: lo - pad, hi: hi + pad * room };
  }

  sy(P, v) { return P.top + (P.hi - v) / (P.hi - P.lo) * P.h; }

  draw() {
    if (!this.spec) return;
    const s = this.spec, L = this.layout(), r = Math.min(2, window.devicePixelRatio || 1), c = this.canvas;
    c.width = Math.round(L.w * r); c.height = Math.round(L.h * r);
    c.style.width = L.w + "px"; c.style.height = L.h + "px";
    const ctx = c.getContext("2d");
    ctx.setTransform(r, 0, 0, r, 0, 0);
    ctx.clearRect(0, 0, L.w, L.h);
    ctx.font = "bold 12px sans-serif"; ctx.fillStyle = "#333"; ctx.textBaseline = "top"; ctx.textAlign = "left";
    ctx.fillText(s.title, 4, 4);
    ctx.font = "10px sans-serif";
    s.series.forEach((ser, i) => {
      const P = this.panel(L, i);
      ctx.strokeStyle = "#e6e6e6"; ctx.lineWidth = 1; ctx.fillStyle = "#666";
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      for (const v of ticks(P.lo, P.hi, 3)) {
        const y = Math.round(this.sy(P, v)) + 0.5;
        ctx.beginPath(); ctx.moveTo(M.l, y); ctx.lineTo(M.l + L.pw, y); ctx.stroke();
        ctx.fillText(fmt(v), M.l - 4, y);
      }
      ctx.strokeStyle = "#ccc"; ctx.strokeRect(M.l + 0.5, P.top + 0.5, L.pw - 1, P.h - 1);
      if (ser.better) {  // which way is good, level in the panel's corner (an arrow would turn with the axis name)
        ctx.save(); ctx.fillStyle = "#888"; ctx.textAlign = "right"; ctx.textBaseline = "top";
        ctx.fillText(ser.better, M.l + L.pw - 4, P.top + 3); ctx.restore();
      }
      ctx.save(); ctx.translate(10, P.top + P.h / 2); ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillStyle = "#444"; ctx.fillText(ser.name, 0, 0);
      ctx.restore();
      ctx.strokeStyle = "#1f77b4"; ctx.fillStyle = "#1f77b4"; ctx.lineWidth = 1.5;
      ctx.beginPath();
      let open = false;
      s.steps.forEach((st, j) => {
        const v = ser.y[j];
        if (v === null || !Number.isFinite(v)) { open = false; return; }
        const x = this.sx(L, st), y = this.sy(P, v);
        open ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
        open = true;
      });
      ctx.stroke();
      s.steps.forEach((st, j) => {
        const v = ser.y[j];
        if (v === null || !Number.isFinite(v)) return;
        ctx.beginPath(); ctx.arc(this.sx(L, st), this.sy(P, v), 3, 0, 2 * Math.PI); ctx.fill();
      });
      ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2;
      for (const [st, v] of ser.alerts) {
        const x = this.sx(L, st), y = this.sy(P, v);
        ctx.beginPath(); ctx.moveTo(x - 5, y - 5); ctx.lineTo(x + 5, y + 5); ctx.moveTo(x + 5, y - 5); ctx.lineTo(x - 5, y + 5); ctx.stroke();
      }
    });
    const bottom = M.t + s.series.length * (s.height_per + M.gap) - M.gap;
    const vline = (st, color, width, dash) => {
      const x = this.sx(L, st);
      ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
      ctx.beginPath(); ctx.moveTo(x, M.t); ctx.lineTo(x, bottom); ctx.stroke(); ctx.setLineDash([]);
    };
    for (const st of s.alert_steps) vline(st, "#d62728", 1, [2, 3]);
    if (s.focus !== null && s.focus !== undefined) vline(s.focus, "#1f77b4", 2, []);
    ctx.fillStyle = "#666"; ctx.textAlign = "center"; ctx.textBaseline = "top";
    // steps as the rest of the page writes them (15,000, not 1.5e+4)
    for (const v of ticks(L.x0, L.x1, 6).filter((t) => Math.abs(t - Math.round(t)) < 1e-6)) {
      ctx.fillText(Math.round(v).toLocaleString("en-US"), this.sx(L, v), bottom + 5);
    }
  }

  nearest(ev) {
    // The data point nearest to the pointer (within 12 px), over all panels.
    if (!this.spec) return null;
    const b = this.canvas.getBoundingClientRect(), mx = ev.clientX - b.left, my = ev.clientY - b.top;
    const L = this.layout();
    let best = null, bestD = 12;
    this.spec.series.forEach((ser, i) => {
      const P = this.panel(L, i);
      this.spec.steps.forEach((st, j) => {
        const v = ser.y[j];
        if (v === null || !Number.isFinite(v)) return;
        const d = Math.hypot(this.sx(L, st) - mx, this.sy(P, v) - my);
        if (d <= bestD) { bestD = d; best = { step: st, name: ser.name, value: v, x: mx, y: my }; }
      });
    });
    return best;
  }

  hover(ev) {
    const hit = this.nearest(ev);
    if (!hit) { this.tip.style.display = "none"; return; }
    // the alert marked on this panel at that step, else every alert of the step
    const own = (this.spec.series.find((ser) => ser.name === hit.name) || { alerts: [] }).alerts
      .find((m) => m[0] === hit.step);
    const alert = own ? own[2] : (this.spec.messages || {})[String(hit.step)];
    this.tip.textContent = `step ${hit.step.toLocaleString("en-US")} · ${hit.name} ${fmt(hit.value)}` + (alert ? ` · ALERT ${alert}` : "");
    this.tip.style.display = "block";  // first, so its size is known: an alert's text wraps and stays in the chart
    this.tip.style.left = Math.max(0, Math.min(hit.x + 12, this.root.clientWidth - this.tip.offsetWidth - 2)) + "px";
    this.tip.style.top = hit.y + 12 + "px";
  }

  pixelOf(series, j) {
    // Page coordinates of point j of a series (for tests).
    const L = this.layout(), P = this.panel(L, series), b = this.canvas.getBoundingClientRect();
    return [b.left + this.sx(L, this.spec.steps[j]), b.top + this.sy(P, this.spec.series[series].y[j])];
  }

  destroy() {
    this.resizer.disconnect();
    this.root.remove();
  }
}

const View = EvoLines;  // mounted by canvas_mount.js
