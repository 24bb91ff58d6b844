// A prediction shown as the digit, its confidence, and a bar for each digit's probability.

import { el, formatPercent } from './ui.js';

export function showPrediction(container, { digit, confidence, probabilities }) {
  container.replaceChildren(
    el('p', { class: 'verdict' }, el('span', { class: 'digit', 'data-digit': digit }, String(digit)),
      el('span', { class: 'confidence' }, `${formatPercent(confidence)} sure`)),
    el('ol', { class: 'bars' }, ...probabilities.map((probability, index) => el('li', {
      class: index === digit ? 'top' : null, 'data-probability': probability,
    }, el('span', { class: 'label' }, String(index)),
    el('span', { class: 'bar', style: `--share: ${probability}` }),
    el('span', { class: 'number' }, formatPercent(probability))))),
  );
}

export function showMessage(container, message, kind = 'hint') {
  container.replaceChildren(el('p', { class: kind }, message));
}
