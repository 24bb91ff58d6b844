// A prediction shown as the digit, its confidence, a bar for each digit's probability and, when the answer has
// it, the 28x28 image the model classified: a misreading often shows there (a digit cut off, too thin, off-centre).

import { el, formatPercent } from './ui.js';

export function showPrediction(container, { digit, confidence, probabilities, image }) {
  container.replaceChildren(
    el('div', { class: 'verdict' },
      el('p', {}, el('span', { class: 'digit', 'data-digit': digit }, String(digit)),
        el('span', { class: 'confidence' }, `${formatPercent(confidence)} sure`)),
      ...(image ? [el('figure', { class: 'seen' },
        el('img', { src: image, width: 28, height: 28, alt: `The 28x28 image the model read as ${digit}` }),
        el('figcaption', {}, 'what the model saw'))] : [])),
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
