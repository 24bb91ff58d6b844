// The training form. Its fields, bounds and choices are the server's own description of TrainingConfig
// (openapi.json), and its values start as the chosen preset's (GET presets): it cannot drift from the API.
// Only what differs from the preset is sent, and the server's validation errors appear beside their fields.
// A nested object (augmentation) is a field per sub-field, named with a dot ("augmentation.rotation").

import { api } from './api.js';
import { el } from './ui.js';

const MAIN_FIELDS = ['preset', 'train_batches', 'learning_rate', 'optimizer', 'batch_size', 'seed'];

export class TrainForm {
  constructor(form, { onStarted }) {
    this.form = form;
    this.onStarted = onStarted;
    this.formError = form.querySelector('.form-error');
    this.inputs = new Map(); // field name -> { input, read, write }
    form.addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
  }

  async load() {
    const [openapi, { presets }] = await Promise.all([api('openapi.json'), api('presets')]);
    this.presets = presets;
    const { schemas } = openapi.components;
    const properties = flatten(schemas.TrainingConfig.properties, schemas);
    const names = [...MAIN_FIELDS, ...Object.keys(properties).filter((name) => !MAIN_FIELDS.includes(name))];
    for (const name of names.filter((name) => name in properties)) {
      const group = MAIN_FIELDS.includes(name) ? 'main' : 'more';
      this.form.querySelector(`[data-fields=${group}]`).append(this.field(name, properties[name]));
    }
    this.fill(Object.keys(presets)[0]);
  }

  field(name, property) {
    const control = name === 'preset' ? choice(Object.keys(this.presets)) : controlFor(property);
    control.input.id = `field-${name.replaceAll('.', '-')}`;
    control.input.name = name;
    if (name === 'preset') control.input.addEventListener('change', () => this.fill(control.input.value));
    this.inputs.set(name, control);
    const text = name[0].toUpperCase() + name.slice(1).replaceAll(/[_.]/g, ' ');
    const label = el('label', { for: control.input.id }, text);
    const error = el('p', { class: 'field-error', role: 'alert', hidden: true });
    const kind = control.input.type === 'checkbox' ? 'field flag' : 'field';
    return el('div', { class: kind, 'data-field': name, title: property.description ?? null },
      ...(control.input.type === 'checkbox' ? [control.input, label] : [label, control.input]), error);
  }

  fill(presetName) {
    for (const [name, control] of this.inputs) control.write(valueAt(this.presets[presetName], name));
  }

  body() {
    const preset = this.presets[this.inputs.get('preset').read()];
    const body = {};
    for (const [name, control] of this.inputs) {
      const value = control.read();
      const changed = JSON.stringify(value) !== JSON.stringify(valueAt(preset, name));
      if (name === 'preset' || changed) setAt(body, name, value);
    }
    return body;
  }

  async submit() {
    this.showErrors([]);
    const button = this.form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      this.onStarted(await api('jobs', { method: 'POST', body: this.body() }));
    } catch (error) {
      this.showErrors(Array.isArray(error.detail) ? error.detail : [{ loc: [], msg: error.message }]);
    } finally {
      button.disabled = false;
    }
  }

  // FastAPI's errors name their field in `loc` (["body", "learning_rate", ...], ["body", "augmentation", "noise"]);
  // the rest concern the form.
  showErrors(errors) {
    for (const node of this.form.querySelectorAll('.field-error')) node.hidden = true;
    const general = [];
    for (const { loc, msg } of errors) {
      const node = this.form.querySelector(`[data-field="${loc.slice(1).join('.')}"] .field-error`)
        ?? this.form.querySelector(`[data-field="${loc[1]}"] .field-error`);
      if (loc[0] === 'body' && node) {
        node.textContent = msg;
        node.hidden = false;
      } else {
        general.push(msg);
      }
    }
    this.formError.textContent = general.join(' ');
    this.formError.hidden = !general.length;
  }
}

// The properties by field name, a nested object's (a $ref) as one per sub-field: "augmentation.rotation".
function flatten(properties, schemas) {
  const fields = {};
  for (const [name, property] of Object.entries(properties)) {
    const nested = property.$ref && schemas[property.$ref.split('/').pop()];
    if (!nested) fields[name] = property;
    else for (const [sub, subProperty] of Object.entries(nested.properties)) fields[`${name}.${sub}`] = subProperty;
  }
  return fields;
}

function valueAt(object, path) {
  return path.split('.').reduce((value, key) => value?.[key], object);
}

function setAt(object, path, value) {
  const keys = path.split('.');
  const last = keys.pop();
  const parent = keys.reduce((node, key) => (node[key] ??= {}), object);
  parent[last] = value;
}

// An input for a JSON-schema property, with how to read and write its value.
function controlFor(property) {
  const type = property.anyOf?.find((option) => option.type !== 'null') ?? property;
  if (type.enum) return choice(type.enum);
  if (type.type === 'boolean') {
    const input = el('input', { type: 'checkbox' });
    return { input, read: () => input.checked, write: (value) => { input.checked = value; } };
  }
  if (type.type === 'array') { // a list of numbers, typed as "8, 16"
    const input = el('input', { type: 'text', inputmode: 'numeric' });
    return {
      input,
      read: () => input.value.split(/[\s,]+/).filter(Boolean).map(Number),
      write: (value) => { input.value = value.join(', '); },
    };
  }
  const input = el('input', {
    type: 'number',
    min: type.minimum ?? type.exclusiveMinimum,
    max: type.maximum ?? type.exclusiveMaximum,
    step: type.type === 'integer' ? 1 : 'any',
    placeholder: property.anyOf ? 'none' : null,
  });
  return {
    input,
    read: () => (input.value === '' ? null : Number(input.value)),
    write: (value) => { input.value = value ?? ''; },
  };
}

function choice(options) {
  const input = el('select', {}, ...options.map((option) => el('option', { value: option }, option)));
  return { input, read: () => input.value, write: (value) => { input.value = value; } };
}
