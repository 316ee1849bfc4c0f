// @ts-check
// The form of a server's question to the user (MCP elicitation), drawn from
// its requested schema: a flat object whose properties are strings (with
// the formats email, uri, date and date-time), numbers, integers, booleans,
// enums (enum, oneOf or anyOf of const and title, or enum with enumNames)
// and arrays of enums (a multi-select), with their titles, descriptions,
// bounds and defaults. A url-mode question is a link to open instead.
// Nothing here reaches the server: the page posts what the form gives to
// the inputs route, which checks it against the schema again.
import { el } from './common.js';

/** @typedef {import('./protocol.js').InputRequest} InputRequest */

/**
 * @typedef {object} Choice
 * @property {string} value
 * @property {string} label
 */

/**
 * A property of a requested schema, as far as forms go.
 * @typedef {object} FieldSchema
 * @property {string} [type]
 * @property {string} [title]
 * @property {string} [description]
 * @property {string} [format]
 * @property {unknown} [default]
 * @property {number} [minimum]
 * @property {number} [maximum]
 * @property {number} [minLength]
 * @property {number} [maxLength]
 * @property {number} [minItems]
 * @property {number} [maxItems]
 * @property {unknown[]} [enum]
 * @property {string[]} [enumNames]
 * @property {{const: unknown, title?: string}[]} [oneOf]
 * @property {{const: unknown, title?: string}[]} [anyOf]
 * @property {FieldSchema} [items]
 */

/**
 * choices returns the options of an enum schema, or null.
 * @param {FieldSchema | undefined} s
 * @returns {Choice[] | null}
 */
function choices(s) {
  if (!s) return null;
  const alts = s.oneOf || s.anyOf;
  if (Array.isArray(alts) && alts.every((a) => a && 'const' in a)) {
    return alts.map((a) => ({ value: String(a.const), label: a.title || String(a.const) }));
  }
  if (Array.isArray(s.enum)) {
    return s.enum.map((v, i) => ({ value: String(v), label: (s.enumNames && s.enumNames[i]) || String(v) }));
  }
  return null;
}

/** @type {Record<string, string>} input types by string format */
const formatTypes = { email: 'email', uri: 'url', date: 'date', 'date-time': 'datetime-local' };

/**
 * A field of the form: its element, and how to read its value (undefined
 * when left empty).
 * @typedef {object} Field
 * @property {HTMLElement} node
 * @property {() => unknown} value
 */

/**
 * field draws one property.
 * @param {string} name
 * @param {FieldSchema} s
 * @param {boolean} required
 * @returns {Field}
 */
function field(name, s, required) {
  const id = 'elicit-' + name + '-' + Math.random().toString(36).slice(2, 8);
  const label = el('label', { for: id }, (s.title || name) + (required ? ' *' : ''));
  const help = s.description ? el('div', { class: 'help' }, s.description) : null;
  const wrap = (/** @type {HTMLElement} */ input) => el('div', { class: 'field', dataset: { name } }, label, input, ...(help ? [help] : []));

  if (s.type === 'array') {
    const opts = choices(s.items) || [];
    const defaults = Array.isArray(s.default) ? s.default.map(String) : [];
    const boxes = opts.map((o) => {
      const box = /** @type {HTMLInputElement} */ (el('input', { type: 'checkbox', value: o.value }));
      box.checked = defaults.includes(o.value);
      return { box, node: el('label', { class: 'choice' }, box, ' ' + o.label) };
    });
    const group = el('div', { class: 'choices', id }, ...boxes.map((b) => b.node));
    return { node: wrap(group), value: () => boxes.filter((b) => b.box.checked).map((b) => b.box.value) };
  }
  const opts = choices(s);
  if (opts) {
    const select = /** @type {HTMLSelectElement} */ (el('select', { id, name }));
    if (!required || s.default === undefined) select.append(el('option', { value: '' }, '—'));
    for (const o of opts) select.append(el('option', { value: o.value }, o.label));
    if (s.default !== undefined) select.value = String(s.default);
    select.required = required;
    return { node: wrap(select), value: () => (select.value === '' ? undefined : select.value) };
  }
  if (s.type === 'boolean') {
    const box = /** @type {HTMLInputElement} */ (el('input', { id, name, type: 'checkbox' }));
    box.checked = s.default === true;
    return { node: wrap(box), value: () => box.checked };
  }
  const input = /** @type {HTMLInputElement} */ (el('input', { id, name }));
  if (s.type === 'number' || s.type === 'integer') {
    input.type = 'number';
    input.step = s.type === 'integer' ? '1' : 'any';
    if (s.minimum !== undefined) input.min = String(s.minimum);
    if (s.maximum !== undefined) input.max = String(s.maximum);
  } else {
    input.type = (s.format && formatTypes[s.format]) || 'text';
    if (s.minLength !== undefined) input.minLength = s.minLength;
    if (s.maxLength !== undefined) input.maxLength = s.maxLength;
  }
  if (s.default !== undefined) input.value = String(s.default);
  input.required = required;
  return {
    node: wrap(input),
    value: () => {
      const v = input.value;
      if (v === '') return undefined;
      if (s.type === 'number' || s.type === 'integer') return Number(v);
      if (s.format === 'date-time') return new Date(v).toISOString();
      return v;
    },
  };
}

/**
 * inputForm draws a server's question: a form from its requested schema
 * (form mode) or a link to open (url mode), with Decline and Cancel.
 * answer(action, content) is called once, with what the user chose.
 * @param {InputRequest} input
 * @param {(action: 'accept' | 'decline' | 'cancel', content?: Record<string, unknown>) => void} answer
 * @returns {HTMLElement}
 */
export function inputForm(input, answer) {
  const head = el('div', { class: 'elicit-head' }, el('strong', {}, input.server), ' asks: ', input.message);
  const decline = el('button', { type: 'button', class: 'decline' }, 'Decline');
  const cancel = el('button', { type: 'button', class: 'cancel' }, 'Cancel');
  decline.addEventListener('click', () => answer('decline'));
  cancel.addEventListener('click', () => answer('cancel'));
  if (input.mode === 'url') {
    const link = /** @type {HTMLAnchorElement} */ (el('a', { class: 'open', target: '_blank', rel: 'noopener noreferrer' }, 'Open the link'));
    // Only http(s) links are offered: a javascript: URL would run here.
    const safe = /^https?:\/\//i.test(input.url || '');
    if (safe) link.href = /** @type {string} */ (input.url);
    const done = el('button', { type: 'button', class: 'accept' }, 'I opened it');
    done.addEventListener('click', () => answer('accept'));
    return el('div', { class: 'elicit', dataset: { input: input.id, mode: 'url' } }, head,
      el('div', { class: 'url' }, safe ? link : 'The server sent a link that is not http(s): ' + (input.url || '')),
      el('div', { class: 'actions' }, done, decline, cancel));
  }
  const schema = /** @type {{properties?: Record<string, FieldSchema>, required?: string[]}} */ (input.requested_schema || {});
  const required = new Set(schema.required || []);
  /** @type {[string, Field][]} */
  const fields = Object.entries(schema.properties || {}).map(([name, s]) => [name, field(name, s || {}, required.has(name))]);
  const submit = el('button', { type: 'submit', class: 'accept' }, 'Submit');
  const form = /** @type {HTMLFormElement} */ (el('form', { class: 'elicit', dataset: { input: input.id, mode: 'form' } }, head,
    ...fields.map(([, f]) => f.node), el('div', { class: 'actions' }, submit, decline, cancel)));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    /** @type {Record<string, unknown>} */
    const content = {};
    for (const [name, f] of fields) {
      const v = f.value();
      if (v !== undefined) content[name] = v;
    }
    answer('accept', content);
  });
  return form;
}
