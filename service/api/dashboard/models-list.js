// The trained models with their test accuracy; one is the default that /predict uses (the first model trained, or
// the one chosen since): only "Make default" here (or the API, the CLI, a job's make_default) changes it.

import { api } from './api.js';
import { el, formatPercent } from './ui.js';

export class ModelsList {
  constructor(list, { onDefaultChange }) {
    this.list = list;
    this.onDefaultChange = onDefaultChange;
  }

  async refresh() {
    let listing;
    try {
      listing = await api('models');
    } catch (error) {
      this.list.replaceChildren(el('li', { class: 'note' }, error.message));
      return;
    }
    const rows = listing.models.map((model) => this.row(model, model.id === listing.default.model_id));
    if (rows.length && !listing.default.model_id) { // e.g. the default was deleted: the server says what to do
      rows.unshift(el('li', { class: 'note', 'data-no-default': '' }, 'No default model: make one the default.'));
    }
    this.list.replaceChildren(...(rows.length ? rows : [el('li', { class: 'note' }, 'No models yet: train one.')]));
  }

  row(model, isDefault) {
    let action = el('span', { class: 'badge default' }, 'default');
    if (!isDefault) {
      action = el('button', { type: 'button', class: 'secondary small', title: 'Make this the model that reads the '
        + 'pad and the test digits' }, 'Make default');
      action.addEventListener('click', () => this.makeDefault(model.id));
    }
    return el('li', { class: 'model', 'data-model-id': model.id },
      el('span', { class: 'mono', title: model.summary }, model.id),
      el('span', { class: 'number' }, formatPercent(model.test_accuracy)),
      action);
  }

  async makeDefault(modelId) {
    try {
      await api(`models/${modelId}/default`, { method: 'POST' });
    } catch (error) {
      this.list.prepend(el('li', { class: 'note error' }, error.message));
      return;
    }
    await this.refresh();
    this.onDefaultChange();
  }
}
