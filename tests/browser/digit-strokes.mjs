// Digits as people draw them, as pointer strokes: several shapes per digit (1 with or without a flag and a base,
// open and closed 4s, 7 with or without a bar, ...), each drawn at a random size, position, slant, width and with
// a shaky hand, from a seeded random generator. Used to draw the `pad` evaluation set (draw-digits.mjs) and by
// the dashboard's browser test. No browser here: `drawDigit` takes a playwright page.

// A seeded generator of numbers in [0, 1) (mulberry32): the same seed draws the same digits.
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (random, low, high) => low + (high - low) * random();

// Pieces of strokes in a box 1 high and about 0.6 wide, y downwards; angles in degrees, 0 to the right, 90 down.
function arc(cx, cy, rx, ry, from, to, steps = 24) {
  return Array.from({ length: steps + 1 }, (_, i) => {
    const angle = ((from + ((to - from) * i) / steps) * Math.PI) / 180;
    return [cx + rx * Math.cos(angle), cy + ry * Math.sin(angle)];
  });
}

function line(start, end, steps = 8) {
  return Array.from({ length: steps + 1 }, (_, i) => [
    start[0] + ((end[0] - start[0]) * i) / steps, start[1] + ((end[1] - start[1]) * i) / steps]);
}

function curve(p0, p1, p2, p3, steps = 20) { // a cubic Bézier
  return Array.from({ length: steps + 1 }, (_, i) => {
    const t = i / steps;
    const u = 1 - t;
    return [0, 1].map((k) => u * u * u * p0[k] + 3 * u * u * t * p1[k] + 3 * u * t * t * p2[k] + t * t * t * p3[k]);
  });
}

const path = (...pieces) => pieces.flat();

// Each digit's shapes: name -> (random) -> strokes (each a list of [x, y] points). `v` varies a proportion.
export const SHAPES = {
  0: {
    oval: (v) => [arc(0.3, 0.5, v(0.24, 0.32), 0.5, -90, 270 + v(0, 20), 40)],
    'oval drawn clockwise': (v) => [arc(0.3, 0.5, v(0.22, 0.3), 0.5, -80, -440, 40)],
    'narrow oval': (v) => [arc(0.3, 0.5, v(0.14, 0.2), 0.5, -100, 265, 40)],
    'left open at the top': (v) => [arc(0.3, 0.5, v(0.22, 0.3), 0.5, -70, v(220, 250), 36)],
    'overlapping its start': (v) => [arc(0.3, 0.5, v(0.2, 0.3), 0.5, -120, 300, 44)],
  },
  1: {
    stroke: (v) => [line([0.3 + v(0, 0.06), 0], [0.3, 1])],
    'with a flag': (v) => [path(line([0.3 - v(0.15, 0.25), v(0.15, 0.3)], [0.32, 0], 5), line([0.32, 0], [0.32, 1]))],
    'with a flag and a base': (v) => [
      path(line([0.3 - v(0.15, 0.22), v(0.15, 0.25)], [0.32, 0], 5), line([0.32, 0], [0.32, 1])),
      line([0.32 - v(0.15, 0.22), 1], [0.32 + v(0.15, 0.22), 1], 6)],
  },
  2: {
    'round top, flat base': (v) => [path(arc(0.3, 0.28, 0.27, 0.26, 200, 390, 20),
      curve([0.56, 0.38], [0.45, 0.6], [0.2, 0.8], [0.02, 1], 12), line([0.02, 1], [0.6 + v(0, 0.08), 0.98], 8))],
    'with a loop': (v) => [path(arc(0.3, 0.28, 0.26, 0.26, 200, 390, 20),
      curve([0.55, 0.38], [0.45, 0.65], [0.15, 0.85], [0.05, 0.97], 12),
      arc(0.14, 0.88, 0.13, v(0.1, 0.13), 90, -200, 14), curve([0.02, 0.8], [0.25, 1.02], [0.45, 0.98], [0.62, 0.95], 10))],
    'z-like': (v) => [path(line([0.04, 0.05], [0.56, 0.02], 6), line([0.56, 0.02], [0.04, 1], 12),
      line([0.04, 1], [0.6, 1 - v(0, 0.04)], 6))],
  },
  3: {
    'two bumps': (v) => [path(arc(0.28, 0.25, 0.26, 0.25, 200, 450, 24), arc(0.28, 0.74, v(0.28, 0.33), 0.26, -90, 160, 24))],
    'flat top': (v) => [path(line([0.04, 0.02], [0.55, 0.02], 6), line([0.55, 0.02], [0.25, 0.42], 8),
      arc(0.28, 0.7, 0.29, v(0.27, 0.3), -95, 165, 24))],
    'pointed middle': (v) => [path(arc(0.25, 0.25, 0.3, 0.25, 210, 430, 20), line([0.3, 0.5], [0.18 + v(0, 0.1), 0.5], 3),
      arc(0.25, 0.75, 0.32, 0.25, -90, 150, 20))],
  },
  4: {
    open: (v) => [line([0.42 - v(0, 0.1), 0], [0.02, 0.66]).concat(line([0.02, 0.66], [0.62, 0.66], 8)),
      line([0.45, 0.2 + v(0, 0.15)], [0.45, 1])],
    'open, two strokes': (v) => [path(line([0.05, 0], [0.03, 0.6], 8), line([0.03, 0.6], [0.6, 0.6], 8)),
      line([0.48, v(0, 0.1)], [0.47, 1])],
    'crossed, long bar': (v) => [path(line([0.3, 0], [0.0, 0.62], 8), line([0, 0.62], [0.7, 0.6], 10)),
      line([0.42, 0.25], [0.4 + v(-0.05, 0.05), 1])],
    closed: (v) => [path(line([0.45, 1], [0.45, 0]), line([0.45, 0], [0, 0.7], 10), line([0, 0.7], [0.64, 0.7 - v(0, 0.05)], 8))],
  },
  5: {
    'bar last': (v) => [path(line([0.1, 0.02], [0.06, 0.45], 6), arc(0.3, 0.7, v(0.27, 0.32), 0.3, -125, 150, 24)),
      line([0.1, 0.02], [0.55, 0], 6)],
    'one stroke': (v) => [path(line([0.56, 0], [0.1, 0.02], 6), line([0.1, 0.02], [0.06, 0.45], 6),
      arc(0.3, 0.7, v(0.26, 0.31), 0.3, -125, 150, 24))],
  },
  6: {
    'curved stem': (v) => [path(curve([0.5, 0], [0.2, 0.1], [0.02, 0.4], [0.03, 0.68], 16),
      arc(0.3, 0.71, 0.27, v(0.26, 0.3), 180, 535, 30))],
    'straight stem': (v) => [path(line([0.45, 0], [0.05, 0.62], 10), arc(0.3, 0.73, 0.26, v(0.24, 0.28), 200, 560, 30))],
    'small loop': (v) => [path(curve([0.55, 0], [0.15, 0.15], [0.05, 0.55], [0.12, 0.82], 16),
      arc(0.3, 0.8, v(0.18, 0.22), v(0.16, 0.2), 160, 520, 26))],
  },
  7: {
    plain: (v) => [path(line([0, 0.02], [0.6, 0], 8), line([0.6, 0], [0.2 + v(0, 0.08), 1], 12))],
    'with a bar': (v) => [path(line([0, 0.02], [0.6, 0], 8), line([0.6, 0], [0.22, 1], 12)),
      line([0.18, 0.52], [0.6, 0.5 + v(-0.04, 0.04)], 6)],
    'curved stem': (v) => [path(line([0, 0.03], [0.62, 0], 8), curve([0.62, 0], [0.4, 0.3], [0.28, 0.6], [0.27, 1], 14))],
    'hooked': (v) => [path(line([0.02, v(0.1, 0.2)], [0, 0.02], 3), line([0, 0.02], [0.6, 0], 8),
      line([0.6, 0], [0.25, 1], 12))],
  },
  8: {
    'one stroke': (v) => [path(arc(0.3, 0.25, v(0.2, 0.25), 0.25, 0, -270, 20),
      curve([0.3, 0.5], [0.65, 0.6], [0.6, 1], [0.3, 1], 12), curve([0.3, 1], [0, 1], [-0.05, 0.6], [0.3, 0.5], 12),
      arc(0.3, 0.25, 0.22, 0.25, 90, 0, 10))],
    'two loops': (v) => [arc(0.3, 0.24, v(0.17, 0.22), 0.24, 90, 450, 28), arc(0.3, 0.74, v(0.24, 0.29), 0.26, -90, 270, 28)],
  },
  9: {
    'straight tail': (v) => [path(arc(0.3, 0.27, 0.27, v(0.24, 0.28), -20, -380, 30), line([0.57, 0.3], [0.5, 1], 12))],
    'curved tail': (v) => [path(arc(0.3, 0.27, 0.27, 0.26, -20, -380, 30),
      curve([0.57, 0.3], [0.58, 0.7], [0.45, 1], [0.15, v(0.92, 1)], 14))],
    'closed, stroke down': (v) => [arc(0.3, 0.27, 0.26, 0.26, 0, 360, 30), line([0.56, 0.2], [0.55, 1], 12)],
    'open loop': (v) => [path(arc(0.3, 0.27, 0.27, 0.25, -30, v(-300, -320), 26), line([0.56, 0.12], [0.55, 1], 12))],
  },
};

// The strokes of `digit` (shape `shape`, or one chosen at random) placed in a square of `side` pixels: a size
// between 35% and 85% of it, a random aspect, slant, turn, position, proportions, and a shaky hand.
export function digitStrokes(digit, random, side, shape = undefined) {
  const shapes = SHAPES[digit];
  const names = Object.keys(shapes);
  const name = shape ?? names[Math.floor(random() * names.length)];
  const vary = (low, high) => between(random, low, high);
  const strokes = shapes[name](vary);
  const height = side * between(random, 0.35, 0.85);
  const width = height * between(random, 0.6, 1.35);
  const slant = between(random, -0.2, 0.45); // most hands lean right
  const turn = (between(random, -12, 12) * Math.PI) / 180;
  // A hand's own proportions: the box bent by a smooth warp, and each later stroke set down a little off.
  const warp = [between(random, -0.08, 0.08), between(random, -0.06, 0.06), random() * 6.3, random() * 6.3];
  const offsets = strokes.map((_, i) => (i ? [between(random, -0.05, 0.05), between(random, -0.04, 0.04)] : [0, 0]));
  const wobble = { amplitude: height * between(random, 0.005, 0.035), phase: [random(), random()].map((p) => p * 6.3) };
  const shaped = strokes.map((stroke, k) => stroke.map(([x0, y0], i) => {
    const x = x0 + offsets[k][0] + warp[0] * Math.sin(Math.PI * y0 + warp[2]);
    const y = y0 + offsets[k][1] + warp[1] * Math.sin(Math.PI * x0 * 1.6 + warp[3]);
    const tremor = () => (random() - 0.5) * 0.012 * height; // a mouse's small jerks
    const sx = x * width + (0.5 - y) * slant * height + wobble.amplitude * Math.sin(i * 0.45 + wobble.phase[0]) + tremor();
    const sy = y * height + wobble.amplitude * Math.cos(i * 0.37 + wobble.phase[1]) + tremor();
    return [sx * Math.cos(turn) - sy * Math.sin(turn), sx * Math.sin(turn) + sy * Math.cos(turn)];
  }));
  // Anywhere on the pad, within a margin of 4% (shrunk to fit if need be).
  const all = shaped.flat();
  const [minX, maxX] = [Math.min(...all.map(([x]) => x)), Math.max(...all.map(([x]) => x))];
  const [minY, maxY] = [Math.min(...all.map(([, y]) => y)), Math.max(...all.map(([, y]) => y))];
  const fit = Math.min(1, (0.92 * side) / (maxX - minX), (0.92 * side) / (maxY - minY));
  const left = between(random, 0.04 * side, 0.96 * side - fit * (maxX - minX));
  const top = between(random, 0.04 * side, 0.96 * side - fit * (maxY - minY));
  return {
    shape: name,
    strokes: shaped.map((stroke) => stroke.map(([x, y]) => [left + fit * (x - minX), top + fit * (y - minY)])),
  };
}

// Draw strokes (in the canvas's CSS pixels, from its top left) on the element `selector` of a playwright page,
// as a mouse would: down, moves, up.
export async function drawStrokes(page, selector, strokes) {
  const box = await page.locator(selector).boundingBox();
  const clamp = (value, size) => Math.min(Math.max(value, 1), size - 1);
  for (const stroke of strokes) {
    const [first, ...rest] = stroke.map(([x, y]) => [box.x + clamp(x, box.width), box.y + clamp(y, box.height)]);
    await page.mouse.move(...first);
    await page.mouse.down();
    for (const point of rest) await page.mouse.move(...point);
    await page.mouse.up();
  }
}
