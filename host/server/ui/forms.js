// Forms and messages: errors from the API are shown to the person (with each field's message
// next to its field), never swallowed.

import { ApiError } from './api.js';
import { h, formData } from './dom.js';

const alerts = () => document.getElementById('alerts');

export function showError(err) {
  const message = err instanceof ApiError ? `${err.message} (${err.code})` : String(err.message || err);
  const fields = err instanceof ApiError ? Object.entries(err.errors) : [];
  const box = h('div', { class: 'alert', role: 'alert' },
    h('strong', {}, message),
    fields.length ? h('ul', {}, fields.map(([f, msgs]) => h('li', {}, `${f}: ${[].concat(msgs).join(' ')}`))) : null,
    h('button', { class: 'link', 'aria-label': 'Dismiss', onclick: () => box.remove() }, '×'));
  alerts().append(box);
  setTimeout(() => box.remove(), 12000);
}

export function notice(text) {
  const box = h('div', { class: 'alert ok', role: 'status' }, text);
  alerts().append(box);
  setTimeout(() => box.remove(), 5000);
}

/// A form's submit: runs `action`, shows per-field messages next to the fields they name.
export function submitter(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const old of form.querySelectorAll('.field-error')) old.remove();
    const button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await action(formData(form));
    } catch (err) {
      if (err instanceof ApiError) {
        for (const [name, messages] of Object.entries(err.errors)) {
          const input = form.querySelector(`[name="${CSS.escape(name.split(/[.[]/)[0])}"]`);
          if (input) input.after(h('span', { class: 'field-error' }, [].concat(messages).join(' ')));
        }
      }
      showError(err);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}
