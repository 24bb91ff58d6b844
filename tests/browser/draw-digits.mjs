// Draws digits on the dashboard's pad in Debian's headless Chromium and saves each picture the pad sends to
// POST /predict, as PNG: the `pad` evaluation set. Run by `python -m bench.handwriting pad`, which serves the app:
//   DASHBOARD_URL=http://127.0.0.1:PORT OUT=dir PER_DIGIT=25 SEED=1 node draw-digits.mjs
// Prints one JSON line per picture: {"file", "digit", "shape"}.

import { writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { SHAPES, digitStrokes, drawStrokes, seededRandom } from './digit-strokes.mjs';

const { DASHBOARD_URL, OUT } = process.env;
const PER_DIGIT = Number(process.env.PER_DIGIT ?? 25);
const random = seededRandom(Number(process.env.SEED ?? 1));
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1180 } });
  await page.goto(DASHBOARD_URL);
  await page.locator('#pad').waitFor();
  const side = (await page.locator('#pad').boundingBox()).width;
  const sent = []; // the pictures the pad has sent to /predict
  page.on('request', (request) => {
    const isPrediction = new URL(request.url()).pathname === '/predict' && request.method() === 'POST';
    if (isPrediction) sent.push(request.postDataJSON().image);
  });
  for (let n = 0; n < PER_DIGIT; n += 1) {
    for (let digit = 0; digit <= 9; digit += 1) {
      const names = Object.keys(SHAPES[digit]);
      const { shape, strokes } = digitStrokes(digit, random, side, names[n % names.length]);
      await page.click('#pad-clear');
      sent.length = 0;
      await drawStrokes(page, '#pad', strokes);
      // The pad asks for a prediction whenever the pen pauses (also between strokes, on a busy machine): wait for
      // the one that carries the whole digit, the canvas as it is now.
      const drawn = await page.evaluate(() => document.querySelector('#pad').toDataURL('image/png'));
      for (const started = Date.now(); !sent.includes(drawn); await page.waitForTimeout(20)) {
        if (Date.now() - started > 10_000) throw new Error(`the pad sent no picture of the whole ${digit}`);
      }
      const file = `pad-${digit}-${String(n).padStart(2, '0')}.png`;
      await writeFile(`${OUT}/${file}`, Buffer.from(drawn.split(',', 2)[1], 'base64'));
      console.log(JSON.stringify({ file, digit, shape }));
    }
  }
} finally {
  await browser.close();
}
