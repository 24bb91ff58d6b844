// MNIST test digits (GET samples) classified by the default model, each mistake marked.

import { api } from './api.js';
import { el } from './ui.js';

const COUNT = 24;
const TEST_SIZE = 10000;
const SIDE = 28;

export class Gallery {
  constructor(list, summary) {
    this.list = list;
    this.summary = summary;
    this.samples = [];
  }

  async load(offset = 0) {
    try {
      ({ samples: this.samples } = await api(`samples?count=${COUNT}&offset=${offset}`));
    } catch (error) {
      this.summary.textContent = error.message;
      return;
    }
    this.list.replaceChildren(...this.samples.map((sample) => el('li', { 'data-index': sample.index },
      digitCanvas(sample.pixels), el('span', { class: 'caption' }, `label ${sample.label}`))));
    await this.classify();
  }

  loadOther() {
    return this.load(Math.floor(Math.random() * (TEST_SIZE - COUNT)));
  }

  async classify() {
    if (!this.samples.length) return;
    let predictions;
    try {
      const instances = this.samples.map(({ pixels }) => ({ pixels }));
      ({ predictions } = await api('predict', { method: 'POST', body: { instances } }));
    } catch (error) {
      this.summary.textContent = error.message; // 409 before any model: "no trained model yet..."
      return;
    }
    let right = 0;
    this.samples.forEach((sample, i) => {
      const { digit } = predictions[i];
      const item = this.list.children[i];
      const correct = digit === sample.label;
      right += correct;
      item.classList.toggle('mistake', !correct);
      item.dataset.predicted = digit;
      item.querySelector('.caption').textContent = correct ? `${digit} ✓` : `${digit} ✗ (${sample.label})`;
    });
    this.summary.textContent = `The default model reads ${right} of these ${this.samples.length} right; `
      + 'a mistake is marked, with the true digit in brackets.';
  }
}

// A 28x28 MNIST digit (light ink on black) on a canvas, enlarged by CSS with sharp pixels.
function digitCanvas(pixels) {
  const canvas = el('canvas', { width: SIDE, height: SIDE });
  const image = new ImageData(SIDE, SIDE);
  pixels.forEach((value, i) => image.data.set([value, value, value, 255], i * 4));
  canvas.getContext('2d').putImageData(image, 0, 0);
  return canvas;
}
