// Small helpers of the page's modules: formatting, debouncing, building elements.

export const shortId = (id) => id.slice(0, 8);

export const formatPercent = (fraction) => `${(fraction * 100).toFixed(1)}%`;

// Run `action` once input has paused for `ms` milliseconds.
export function debounce(action, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => action(...args), ms);
  };
}

// Build an element: el('li', { class: 'row' }, 'text', child, ...).
export function el(name, attributes = {}, ...children) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}
