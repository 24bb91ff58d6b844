// A live line chart in SVG: series drawn as a line or as dots, over a batch axis fixed to the job's length.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 240;
const MARGIN = { top: 12, right: 14, bottom: 40, left: 46 };
const MAX_POINTS = 2000; // per series: a long job keeps every 2nd, then 4th... point, not millions

export class LineChart {
  // series: [{ key, kind: 'line' | 'dots' }]; yRange: [min, max], or null to fit the data from 0.
  constructor(svg, { series, xLabel, yRange = null }) {
    this.svg = svg;
    this.yRange = yRange;
    this.xMax = 1;
    this.data = new Map(series.map(({ key }) => [key, []]));
    this.queued = false;
    svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    this.axes = svg.appendChild(element('g', { class: 'axes' }));
    this.marks = new Map(series.map(({ key, kind }) => {
      const mark = element(kind === 'line' ? 'polyline' : 'g', { class: `series ${kind}`, 'data-series': key });
      return [key, svg.appendChild(mark)];
    }));
    svg.appendChild(element('text', { class: 'axis-label', x: MARGIN.left + plotWidth() / 2, y: HEIGHT - 2 }))
      .textContent = xLabel;
    this.empty = svg.appendChild(element('text', { class: 'empty', x: WIDTH / 2, y: HEIGHT / 2 }));
    this.empty.textContent = 'Waiting for the first batch…';
    this.draw();
  }

  reset(xMax) {
    this.data.forEach((points) => { points.length = 0; });
    this.xMax = Math.max(1, xMax);
    this.draw();
  }

  add(key, x, y) {
    const points = this.data.get(key);
    points.push([x, y]);
    if (points.length > MAX_POINTS) points.splice(0, points.length, ...points.filter((_, i) => i % 2 === 0));
    this.xMax = Math.max(this.xMax, x);
    if (!this.queued) { // many points can arrive in one frame: draw once per frame
      this.queued = true;
      requestAnimationFrame(() => { this.queued = false; this.draw(); });
    }
  }

  draw() {
    const all = [...this.data.values()].flat();
    const [yMin, yMax] = this.yRange ?? [0, Math.max(...all.map(([, y]) => y), 1e-9)];
    const yStep = niceStep(yMax - yMin, 4);
    const yTop = this.yRange ? yMax : Math.ceil(yMax / yStep) * yStep; // fitted data gets a round top
    const sx = (x) => MARGIN.left + (x / this.xMax) * plotWidth();
    const sy = (y) => MARGIN.top + (1 - (y - yMin) / (yTop - yMin)) * plotHeight();

    this.axes.replaceChildren(
      ...steps(yMin, yTop, yStep).map((y) => tick(MARGIN.left, sy(y), WIDTH - MARGIN.right, sy(y), y, 'y')),
      ...steps(0, this.xMax, Math.max(1, niceStep(this.xMax, 5)))
        .map((x) => tick(sx(x), MARGIN.top, sx(x), HEIGHT - MARGIN.bottom, x, 'x')),
    );
    for (const [key, mark] of this.marks) {
      const points = this.data.get(key).map(([x, y]) => [sx(x).toFixed(1), sy(y).toFixed(1)]);
      if (mark.tagName === 'polyline') mark.setAttribute('points', points.map((p) => p.join(',')).join(' '));
      else mark.replaceChildren(...points.map(([cx, cy]) => element('circle', { cx, cy, r: 3 })));
    }
    this.empty.style.display = all.length ? 'none' : '';
  }
}

function plotWidth() { return WIDTH - MARGIN.left - MARGIN.right; }
function plotHeight() { return HEIGHT - MARGIN.top - MARGIN.bottom; }

// A round step (1, 2 or 5 times a power of ten) that cuts `range` into about `count` parts.
function niceStep(range, count) {
  const rough = range / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough * (1 - 1e-9));
}

function steps(from, to, step) {
  const values = [];
  for (let i = 0; from + i * step <= to + step * 1e-9; i += 1) values.push(+(from + i * step).toFixed(10));
  return values;
}

function tick(x1, y1, x2, y2, value, axis) {
  const label = element('text', axis === 'y'
    ? { x: x1 - 6, y: y1 + 4, 'text-anchor': 'end' }
    : { x: x1, y: y2 + 17, 'text-anchor': 'middle' });
  label.textContent = value;
  const group = element('g', { class: `tick ${axis}` });
  group.append(element('line', { x1, y1, x2, y2 }), label);
  return group;
}

function element(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}
