// The evolution map: a 2-D canvas drawn by a Streamlit components-v2 module (no Plotly).
//
// Python (viewer/data/figures.py map_spec) sends a spec: data bounds, an optional density raster,
// the drawn markers as base64 typed arrays (x, y float32; row int32; rgb uint8), the
// instance trail, query matches, band labels or ring names, a legend and the kept
// selection. Two stacked canvases: the base (raster + markers, redrawn on a new spec or a
// zoom) and an overlay (labels, trail, matches, selection shapes, the hover ring: cheap,
// redrawn on every pointer move).
//
// Out: state "selection" ({box: [{x, y}]} or {lasso: [{x, y}]} in data coordinates, or
// null once cleared), trigger "click" (the clicked marker's row). Hovers are not sent to
// Python: a window event "evowatch:hover" ({row, x, y}) feeds the hover preview.

const MARGIN = { l: 10, r: 10, t: 26, b: 8 };
const PICK_PX = 8;
const CELL = 16;
const RING_GAP = 13;  // px between two ring names on the map (a 10px font)
const MIN_HEIGHT = 300;  // px: a map with less room than this below its top keeps this height
const BOTTOM_GAP = 8;  // px left below the map's tools on the first screen
// The instance trail: black, white-edged, no colour of the label palette (label 3 was the trail's red) nor of the step ramp.
const TRAIL_COLOR = "#111";

const css = `
.evomap { position: relative; font: 12px sans-serif; color: #333; user-select: none; }
.evomap canvas { position: absolute; left: 0; top: 0; }
.evomap .evomap-overlay { cursor: crosshair; outline: none; }
.evomap .evomap-tools { position: absolute; right: 12px; bottom: 0; display: flex; gap: 2px; z-index: 2; }
.evomap .evomap-tools button { font: 11px sans-serif; padding: 1px 7px; border: 1px solid #ccc;
  background: #fafafa; border-radius: 3px; cursor: pointer; color: #444; }
.evomap .evomap-tools button.on { background: #e0e8f4; border-color: #7a9cc6; }
.evomap .evomap-legend { position: absolute; left: 12px; bottom: 0; display: flex; flex-wrap: wrap;
  gap: 4px 14px; align-items: center; }
.evomap .evomap-legend i { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 4px; vertical-align: -1px; }
.evomap .evomap-legend .bar { display: inline-block; width: 140px; height: 10px; margin: 0 6px;
  vertical-align: -1px; border-radius: 2px; }
`;

function decode(b64, Type) {
  if (!b64) return new Type(0);
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

function disk(radius) {
  // Pixel offsets of a filled disc (device pixels): the marker stamp.
  const out = [];
  const r = Math.max(0.5, radius), R = Math.ceil(r);
  for (let dy = -R; dy <= R; dy++)
    for (let dx = -R; dx <= R; dx++) if (dx * dx + dy * dy <= r * r + 0.5) out.push([dx, dy]);
  return out.length ? out : [[0, 0]];
}

class EvoMap {
  constructor(parent) {
    this.root = document.createElement("div");
    this.root.className = "evomap";
    const style = document.createElement("style");
    style.textContent = css;
    this.base = document.createElement("canvas");
    this.overlay = document.createElement("canvas");
    this.overlay.className = "evomap-overlay";
    this.tools = document.createElement("div");
    this.tools.className = "evomap-tools";
    this.legend = document.createElement("div");
    this.legend.className = "evomap-legend";
    this.root.append(style, this.base, this.overlay, this.tools, this.legend);
    parent.appendChild(this.root);
    this.root.evomap = this;  // tests and benchmarks read info() and pixelOf() from here
    this.draws = 0;
    this.spec = null;
    this.view = null;
    this.zoomed = false;
    this.selection = null;
    this.hover = -1;
    this.drag = null;
    this.image = null;
    this.buttons = {};
    for (const [name, title] of [["box", "Box select"], ["lasso", "Lasso select"], ["pan", "Pan (wheel zooms)"],
                                 ["reset", "Reset the view"], ["clear", "Clear the selection"]]) {
      const b = document.createElement("button");
      b.textContent = name;
      b.title = title;
      b.addEventListener("click", () => this.tool(name));
      this.tools.appendChild(b);
      this.buttons[name] = b;
    }
    this.tool("box");
    this.listen();
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.root);
    this.onWindowResize = () => this.resize();
    window.addEventListener("resize", this.onWindowResize);
  }

  // ------------------------------------------------------------------ input from Python
  update(spec, api) {
    this.api = api;
    const fresh = !this.spec || spec.sig !== this.spec.sig;
    const viewKey = this.spec && this.spec.view_key;
    if (fresh) {
      this.spec = spec;
      this.pts = {
        n: spec.points.n,
        x: decode(spec.points.x, Float32Array), y: decode(spec.points.y, Float32Array),
        row: decode(spec.points.row, Int32Array), rgb: decode(spec.points.rgb, Uint8Array),
      };
      this.stamp = disk(spec.points.radius * this.dpr());
      this.drawLegend();  // first: its height is room the map leaves below itself
      if (spec.view_key !== viewKey || !this.zoomed || !this.view) {
        this.view = this.fit(spec.bounds);
        this.zoomed = false;
      }
      this.image = null;
      if (spec.raster) {
        const img = new Image();
        img.onload = () => { if (this.spec === spec) { this.image = img; this.drawBase(); } };
        img.src = spec.raster;
      }
    } else {
      this.spec = Object.assign({}, this.spec, { selection: spec.selection });
    }
    this.selection = spec.selection || null;
    this.buttons.clear.disabled = !this.selection;
    this.resize(fresh);
  }

  // ------------------------------------------------------------------ geometry
  dpr() { return Math.min(2, window.devicePixelRatio || 1); }

  size() {
    const w = Math.max(100, this.root.clientWidth || 600);
    return { w, h: this.height || (this.spec ? this.spec.height : 600) };
  }

  measure() {
    // The map's height: spec.height (its most), or less so that the whole map, legend and
    // tools included, fits the first screen below what the page shows above it (a
    // 1280x720 window), but never under MIN_HEIGHT. Measured in the page's scrolling
    // container (Streamlit scrolls its main area, not the window), so scrolling changes nothing.
    const r = this.root.getBoundingClientRect();
    let scroller = null;
    for (let e = this.root.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowY;
      if (o === "auto" || o === "scroll") { scroller = e; break; }
    }
    const room = scroller
      ? scroller.clientHeight - (r.top - scroller.getBoundingClientRect().top + scroller.scrollTop)
      : window.innerHeight - (r.top + window.scrollY);
    this.height = Math.round(Math.max(MIN_HEIGHT, Math.min(this.spec.height, room - BOTTOM_GAP)));
  }

  plot() {
    const { w, h } = this.size();
    // below the plot: the legend's lines (a wrapped legend covered points: 48 labels hid 30)
    const legend = Math.max(22, (this.legendH || 0) + 4);
    return { l: MARGIN.l, t: MARGIN.t, w: w - MARGIN.l - MARGIN.r, h: h - MARGIN.t - MARGIN.b - legend };
  }

  fit(b) {
    // The data bounds, widened on one axis when x and y must share a scale (radial).
    let [x0, x1, y0, y1] = b;
    if (this.spec && this.spec.equal) {
      const p = this.plot(), sx = (x1 - x0) / p.w, sy = (y1 - y0) / p.h, s = Math.max(sx, sy);
      const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
      x0 = cx - s * p.w / 2; x1 = cx + s * p.w / 2; y0 = cy - s * p.h / 2; y1 = cy + s * p.h / 2;
    }
    return { x0, x1, y0, y1 };
  }

  sx(x) { const p = this.plot(), v = this.view; return p.l + (x - v.x0) / (v.x1 - v.x0) * p.w; }
  sy(y) { const p = this.plot(), v = this.view; return p.t + (v.y1 - y) / (v.y1 - v.y0) * p.h; }
  dx(px) { const p = this.plot(), v = this.view; return v.x0 + (px - p.l) / p.w * (v.x1 - v.x0); }
  dy(py) { const p = this.plot(), v = this.view; return v.y1 - (py - p.t) / p.h * (v.y1 - v.y0); }

  resize(force) {
    if (!this.spec) return;
    this.measure();
    const { w, h } = this.size(), r = this.dpr();
    this.root.style.height = h + "px";
    const legendH = this.legendH;
    this.legendH = this.legend.offsetHeight;  // rewrapped at another width
    const changed = this.base.width !== Math.round(w * r) || this.base.height !== Math.round(h * r)
      || legendH !== this.legendH;
    if (changed) {
      for (const c of [this.base, this.overlay]) {
        c.width = Math.round(w * r); c.height = Math.round(h * r);
        c.style.width = w + "px"; c.style.height = h + "px";
      }
      if (!this.zoomed) this.view = this.fit(this.spec.bounds);
    }
    if (changed || force) this.drawBase(); else this.drawOverlay();
  }

  // ------------------------------------------------------------------ drawing
  drawBase() {
    const t0 = performance.now();
    const ctx = this.base.getContext("2d"), r = this.dpr(), p = this.plot();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.base.width, this.base.height);
    ctx.save();
    ctx.scale(r, r);
    ctx.beginPath(); ctx.rect(p.l, p.t, p.w, p.h); ctx.clip();
    if (this.image) {
      const [x0, x1, y0, y1] = this.spec.bounds;
      ctx.imageSmoothingEnabled = !this.zoomed;
      ctx.drawImage(this.image, this.sx(x0), this.sy(y1), this.sx(x1) - this.sx(x0), this.sy(y0) - this.sy(y1));
    }
    ctx.restore();
    this.drawMarkers(ctx, r, p);
    this.drawOverlay();
    this.drawMs = performance.now() - t0;
    this.draws += 1;
  }

  drawMarkers(ctx, r, p) {
    // Markers are stamped into one RGBA buffer ("over" blending) and put once: tens of
    // thousands of points cost a few milliseconds, where a fill() per point would not.
    const W = this.base.width, H = this.base.height, n = this.pts.n;
    const { x, y, rgb } = this.pts;
    const alpha = this.spec.points.opacity;
    const buf = new Float32Array(W * H * 4);
    const px = new Float32Array(n), py = new Float32Array(n);
    const left = p.l * r, top = p.t * r, right = (p.l + p.w) * r, bottom = (p.t + p.h) * r;
    for (let i = 0; i < n; i++) {
      const cx = this.sx(x[i]), cy = this.sy(y[i]);
      px[i] = cx; py[i] = cy;
      const X = Math.round(cx * r), Y = Math.round(cy * r);
      if (X < left - 4 || X > right + 4 || Y < top - 4 || Y > bottom + 4) continue;
      const cr = rgb[3 * i], cg = rgb[3 * i + 1], cb = rgb[3 * i + 2];
      for (const [ox, oy] of this.stamp) {
        const u = X + ox, v = Y + oy;
        if (u < left || u >= right || v < top || v >= bottom) continue;
        const k = (v * W + u) * 4, keep = 1 - alpha;
        buf[k] = cr * alpha + buf[k] * keep;
        buf[k + 1] = cg * alpha + buf[k + 1] * keep;
        buf[k + 2] = cb * alpha + buf[k + 2] * keep;
        buf[k + 3] = alpha + buf[k + 3] * keep;
      }
    }
    this.px = px; this.py = py;
    this.index();
    if (!n) return;
    const img = ctx.createImageData(W, H), out = img.data;
    for (let k = 0; k < buf.length; k += 4) {
      const a = buf[k + 3];
      if (a <= 0) continue;
      out[k] = buf[k] / a; out[k + 1] = buf[k + 1] / a; out[k + 2] = buf[k + 2] / a; out[k + 3] = a * 255;
    }
    const layer = document.createElement("canvas");
    layer.width = W; layer.height = H;
    layer.getContext("2d").putImageData(img, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(layer, 0, 0);
  }

  index() {
    // A uniform grid over the markers' screen positions, for hover and click picking.
    const cells = new Map();
    for (let i = 0; i < this.pts.n; i++) {
      const key = Math.floor(this.px[i] / CELL) * 65536 + Math.floor(this.py[i] / CELL);
      let c = cells.get(key);
      if (!c) cells.set(key, c = []);
      c.push(i);
    }
    this.cells = cells;
  }

  pick(mx, my) {
    // The marker (index into the drawn points) nearest to (mx, my) within PICK_PX, else -1;
    // the trail's and the query's markers are tried first (drawn on top).
    for (const extra of [this.spec.trail, this.spec.highlight]) {
      if (!extra) continue;
      for (let j = 0; j < extra.x.length; j++)
        if (Math.hypot(this.sx(extra.x[j]) - mx, this.sy(extra.y[j]) - my) <= PICK_PX) return { row: extra.row[j] };
    }
    if (!this.cells) return null;
    let best = null, bestD = PICK_PX;
    const cx = Math.floor(mx / CELL), cy = Math.floor(my / CELL);
    for (let gx = cx - 1; gx <= cx + 1; gx++)
      for (let gy = cy - 1; gy <= cy + 1; gy++)
        for (const i of this.cells.get(gx * 65536 + gy) || []) {
          const d = Math.hypot(this.px[i] - mx, this.py[i] - my);
          if (d <= bestD) { bestD = d; best = i; }
        }
    return best === null ? null : { row: this.pts.row[best], index: best };
  }

  drawBandNames(ctx, p, labels) {
    // band names as room allows (on a narrow map they ran together: "1,7502,0002,250"): the
    // newest (of a live run the one looked at) and the reference, then every k-th band counted
    // back from the newest, k the smallest that fits (placed greedily, wider names made the
    // stride uneven: 200, 400, ... 1,000, 1,300, 1,600; round AQ)
    const spans = labels.map(([x, text]) => {
      const X = this.sx(x), half = ctx.measureText(text).width / 2 + 3;
      return X >= p.l && X <= p.l + p.w ? [X - half, X + half] : null;  // off the plot: not named
    });
    const apart = (sp, taken) => taken.every((i) => sp[1] <= spans[i][0] || sp[0] >= spans[i][1]);
    const real = labels.length > 1 && labels[0][1] === "real" ? 0 : -1, newest = labels.length - 1;
    const fixed = [];
    for (const i of [newest, real]) if (i >= 0 && spans[i] && apart(spans[i], fixed)) fixed.push(i);
    let chosen = fixed;
    for (let k = 1; k <= newest; k++) {
      const chain = [...fixed];
      let fits = true;
      for (let i = newest - k; i > real; i -= k) {
        if (!spans[i]) continue;
        if (apart(spans[i], chain)) chain.push(i);
        else if (!apart(spans[i], chain.filter((j) => j !== real))) { fits = false; break; }
        // else it touches the reference's name only: left unnamed
      }
      if (fits) { chosen = chain; break; }
    }
    chosen.sort((a, b) => a - b);
    for (const i of chosen) ctx.fillText(labels[i][1], (spans[i][0] + spans[i][1]) / 2, p.t - 3);
    return chosen.map((i) => labels[i][1]);
  }

  drawOverlay() {
    const ctx = this.overlay.getContext("2d"), r = this.dpr(), p = this.plot(), s = this.spec;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    ctx.scale(r, r);
    ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
    ctx.strokeRect(p.l - 0.5, p.t - 0.5, p.w + 1, p.h + 1);
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    this.bandNames = this.drawBandNames(ctx, p, s.labels);
    this.ringNames = this.drawRingNames(ctx, p, s.rings || []);
    ctx.save();
    ctx.beginPath(); ctx.rect(p.l, p.t, p.w, p.h); ctx.clip();
    const shapes = this.drag && this.drag.kind !== "pan" ? [this.drag.shape()] : this.shapes(this.selection);
    for (const poly of shapes) {
      ctx.beginPath();
      poly.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.fillStyle = "rgba(0,0,0,0.04)"; ctx.fill();
      ctx.setLineDash([5, 4]); ctx.strokeStyle = "#444"; ctx.lineWidth = 1.5; ctx.stroke(); ctx.setLineDash([]);
    }
    if (s.highlight) {
      ctx.fillStyle = "#ffd400"; ctx.strokeStyle = "#000"; ctx.lineWidth = 1;
      for (let j = 0; j < s.highlight.x.length; j++) this.star(ctx, this.sx(s.highlight.x[j]), this.sy(s.highlight.y[j]), 6);
    }
    if (s.trail && s.trail.x.length) {
      // Every dot's white outline first, then the line and every dot's fill: outlined dot by
      // dot, a long run's dots (2,000 steps, 0.4 px apart) each painted white over the last
      // ones and the trail read white. Now the outlines only edge the trail as a whole.
      const at = s.trail.x.map((x, j) => [this.sx(x), this.sy(s.trail.y[j])]);
      const dots = () => { ctx.beginPath(); for (const [x, y] of at) { ctx.moveTo(x + 5, y); ctx.arc(x, y, 5, 0, 2 * Math.PI); } };
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; dots(); ctx.stroke();
      ctx.strokeStyle = TRAIL_COLOR; ctx.lineWidth = 2; ctx.beginPath();
      at.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.fillStyle = TRAIL_COLOR; dots(); ctx.fill();
    }
    if (this.hover >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.beginPath();
      ctx.arc(this.px[this.hover], this.py[this.hover], 5, 0, 2 * Math.PI); ctx.stroke();
    }
    ctx.restore();
  }

  drawRingNames(ctx, p, rings) {
    // Each ring's step on the ray above the centre (rings are centred on the origin), the
    // newest first, each at least RING_GAP px from the last one named: zooming in names more
    // rings. A white halo keeps the names legible over the points. Returns the names drawn.
    const drawn = [], cx = this.sx(0);
    if (!rings.length || cx < p.l || cx > p.l + p.w) return drawn;
    ctx.save();
    ctx.beginPath(); ctx.rect(p.l, p.t, p.w, p.h); ctx.clip();
    ctx.font = "10px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round";
    ctx.fillStyle = "#222";
    let last = -Infinity;
    const cy = this.sy(0);
    for (let j = rings.length - 1; j >= 0; j--) {
      const [r, text] = rings[j], y = this.sy(r);
      if (y - last < RING_GAP || y < p.t + 6 || y > p.t + p.h - 6) continue;
      drawn.push([text, y]); last = y;
    }
    ctx.strokeStyle = "rgba(0,0,0,0.12)"; ctx.lineWidth = 1;  // a faint circle ties a name to its ring
    for (const [, y] of drawn) { ctx.beginPath(); ctx.arc(cx, cy, cy - y, 0, 2 * Math.PI); ctx.stroke(); }
    ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.9)";
    for (const [text, y] of drawn) { ctx.strokeText(text, cx, y); ctx.fillText(text, cx, y); }
    ctx.restore();
    return drawn.map(([text]) => text);
  }

  star(ctx, x, y, R) {
    ctx.beginPath();
    for (let k = 0; k < 10; k++) {
      const a = -Math.PI / 2 + k * Math.PI / 5, rr = k % 2 ? R * 0.45 : R;
      k ? ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a)) : ctx.moveTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
    }
    ctx.closePath(); ctx.fill(); ctx.stroke();
  }

  shapes(sel) {
    // A selection (data coordinates) as screen polygons.
    if (!sel) return [];
    const out = [];
    for (const b of sel.box || []) {
      const [x0, x1] = b.x, [y0, y1] = b.y;
      out.push([[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => [this.sx(x), this.sy(y)]));
    }
    for (const l of sel.lasso || []) out.push(l.x.map((x, j) => [this.sx(x), this.sy(l.y[j])]));
    return out;
  }

  drawLegend() {
    const g = this.spec.legend, parts = [];
    const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
    if (g.scale) {
      parts.push(`<span>${esc(g.scale.title)} ${esc(g.scale.low)}<span class="bar" style="background:linear-gradient(90deg,${g.scale.stops.join(",")})"></span>${esc(g.scale.high)}</span>`);
    }
    for (const [name, color] of g.items) parts.push(`<span><i style="background:${esc(color)}"></i>${esc(name)}</span>`);
    if (this.spec.trail && this.spec.trail.x.length) parts.push(`<span><i style="background:${TRAIL_COLOR}"></i>instance trail</span>`);
    if (this.spec.highlight && this.spec.highlight.x.length) parts.push(`<span><i style="background:#ffd400"></i>query match</span>`);
    this.legend.innerHTML = parts.join("");
    this.legend.style.right = this.tools.offsetWidth + 24 + "px";  // wraps beside the tools, never under them
    this.legendH = this.legend.offsetHeight;
  }

  // ------------------------------------------------------------------ interaction
  tool(name) {
    if (name === "reset") { this.zoomed = false; this.view = this.fit(this.spec.bounds); this.drawBase(); return; }
    if (name === "clear") { this.select(null); return; }
    this.mode = name;
    for (const m of ["box", "lasso", "pan"]) this.buttons[m].classList.toggle("on", m === name);
    this.overlay.style.cursor = name === "pan" ? "grab" : "crosshair";
  }

  select(sel) {
    this.selection = sel;
    this.buttons.clear.disabled = !sel;
    this.drawOverlay();
    if (this.api) this.api.setStateValue("selection", sel);
  }

  local(ev) {
    const b = this.overlay.getBoundingClientRect();
    return [ev.clientX - b.left, ev.clientY - b.top];
  }

  emitHover(row, ev) {
    window.dispatchEvent(new CustomEvent("evowatch:hover", { detail: { row, x: ev ? ev.clientX : 0, y: ev ? ev.clientY : 0 } }));
  }

  listen() {
    const o = this.overlay;
    o.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || !this.spec) return;
      const [mx, my] = this.local(ev);
      o.focus({ preventScroll: true });
      o.setPointerCapture(ev.pointerId);
      const start = { mx, my, view: Object.assign({}, this.view) };
      if (this.mode === "pan") {
        this.drag = { kind: "pan", start, moved: false };
      } else if (this.mode === "lasso") {
        const pts = [[mx, my]];
        this.drag = { kind: "lasso", start, pts, moved: false, shape: () => pts };
      } else {
        const d = { kind: "box", start, end: [mx, my], moved: false };
        d.shape = () => [[mx, my], [d.end[0], my], [d.end[0], d.end[1]], [mx, d.end[1]]];
        this.drag = d;
      }
    });
    o.addEventListener("pointermove", (ev) => {
      const [mx, my] = this.local(ev);
      const d = this.drag;
      if (d) {
        if (Math.hypot(mx - d.start.mx, my - d.start.my) > 3) d.moved = true;
        if (d.kind === "pan") {
          const v = d.start.view, p = this.plot();
          const ddx = (mx - d.start.mx) / p.w * (v.x1 - v.x0), ddy = (my - d.start.my) / p.h * (v.y1 - v.y0);
          this.view = { x0: v.x0 - ddx, x1: v.x1 - ddx, y0: v.y0 + ddy, y1: v.y1 + ddy };
          this.zoomed = true;
          this.drawBase();
        } else {
          if (d.kind === "lasso") d.pts.push([mx, my]); else d.end = [mx, my];
          this.drawOverlay();
        }
        return;
      }
      if (!this.spec) return;
      const hit = this.pick(mx, my);
      const idx = hit && hit.index !== undefined ? hit.index : -1;
      if (idx !== this.hover) { this.hover = idx; this.drawOverlay(); }
      this.emitHover(hit ? hit.row : null, ev);
    });
    o.addEventListener("pointerleave", () => {
      if (this.drag) return;
      this.hover = -1; this.drawOverlay(); this.emitHover(null);
    });
    o.addEventListener("pointerup", (ev) => {
      const d = this.drag;
      this.drag = null;
      if (!d) return;
      const [mx, my] = this.local(ev);
      if (!d.moved) {  // a click: follow that sample's instance
        const hit = this.pick(mx, my);
        if (hit && this.api) this.api.setTriggerValue("click", hit.row);
        this.drawOverlay();
        return;
      }
      if (d.kind === "pan") return;
      const poly = d.shape().map(([x, y]) => [this.dx(x), this.dy(y)]);
      if (d.kind === "box") {
        const xs = poly.map((q) => q[0]), ys = poly.map((q) => q[1]);
        this.select({ box: [{ x: [Math.min(...xs), Math.max(...xs)], y: [Math.min(...ys), Math.max(...ys)] }] });
      } else if (poly.length > 2) {
        this.select({ lasso: [{ x: poly.map((q) => q[0]), y: poly.map((q) => q[1]) }] });
      }
    });
    o.addEventListener("dblclick", () => (this.selection ? this.select(null) : this.tool("reset")));
    o.tabIndex = 0;  // focusable, so that Escape clears the selection
    o.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && this.selection) this.select(null); });
    o.addEventListener("wheel", (ev) => {
      if (!this.spec) return;
      ev.preventDefault();
      const [mx, my] = this.local(ev), f = Math.exp(Math.max(-1, Math.min(1, ev.deltaY / 300)));
      const x = this.dx(mx), y = this.dy(my), v = this.view;
      this.view = { x0: x - (x - v.x0) * f, x1: x + (v.x1 - x) * f, y0: y - (y - v.y0) * f, y1: y + (v.y1 - y) * f };
      this.zoomed = true;
      this.drawBase();
    }, { passive: false });
  }

  // ------------------------------------------------------------------ for tests
  info() {
    const s = this.spec || {};
    return { markers: this.pts ? this.pts.n : 0, mode: s.mode, draws: this.draws, labels: this.bandNames || [],
             rings: this.ringNames || [],
             trail: s.trail ? s.trail.x.length : 0, highlight: s.highlight ? s.highlight.x.length : 0,
             sig: s.sig, complete: !s.raster || !!this.image, drawMs: this.drawMs };
  }

  pixelOf(i) {
    // Page coordinates of the i-th drawn marker.
    const b = this.overlay.getBoundingClientRect();
    return [b.left + this.sx(this.pts.x[i]), b.top + this.sy(this.pts.y[i])];
  }

  plotRect() {
    const b = this.overlay.getBoundingClientRect(), p = this.plot();
    return { x: b.left + p.l, y: b.top + p.t, width: p.w, height: p.h };
  }

  destroy() {
    this.resizer.disconnect();
    window.removeEventListener("resize", this.onWindowResize);
    this.root.remove();
  }
}

const View = EvoMap;  // mounted by canvas_mount.js
