// @ts-check
// What the chat page and the admin console share: the session (a bearer
// token kept in sessionStorage), calls to the API, DOM building and
// formatting. No dependencies, no build step.

const TOKEN_KEY = 'switchboard.token';

/**
 * A signed-in user, as the token says.
 * @typedef {object} Session
 * @property {string} token the JWT, sent as the bearer token
 * @property {string} user the user id (sub, else user_id)
 * @property {boolean} admin a hint for showing links only: the server decides
 * @property {Date | null} exp when the token expires
 */

/**
 * What el and fill take as children: nodes, text, nothing, or lists of them.
 * @typedef {Node | string | number | null | undefined | false | ChildList} Child
 * @typedef {Child[]} ChildList
 */

/**
 * decodeClaims returns the payload of a JWT, or null if it is not one.
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
export function decodeClaims(token) {
  const parts = String(token).trim().split('.');
  if (parts.length !== 3) return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/**
 * sessionFrom turns a token into a session, or explains why it cannot.
 * @param {string} token
 * @returns {Session | {error: string}}
 */
function sessionFrom(token) {
  const claims = decodeClaims(token);
  if (!claims) return { error: 'That is not a JWT (three base64url parts separated by dots).' };
  const user = claims.sub || claims.user_id;
  if (!user) return { error: 'The token names no user (no sub or user_id claim).' };
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
    return { error: 'The token has expired. Get a new one.' };
  }
  const roles = Array.isArray(claims.roles) ? claims.roles : String(claims.roles || '').split(/[ ,]+/);
  return {
    token: token.trim(),
    user: String(user),
    // A hint for showing links only: the server decides who is an admin.
    admin: claims.role === 'admin' || roles.includes('admin'),
    exp: typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : null,
  };
}

// takeTokenFromURL moves a token from the URL fragment (#token=..., as the
// dev-mode login URL carries it) into sessionStorage and strips the
// fragment, so that it is neither bookmarked nor left in the history.
function takeTokenFromURL() {
  if (!location.hash) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
}

/**
 * currentSession returns the signed-in session, or null with a reason.
 * @returns {{session: Session | null, reason: string}}
 */
export function currentSession() {
  takeTokenFromURL();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return { session: null, reason: '' };
  const s = sessionFrom(token);
  if ('error' in s) {
    sessionStorage.removeItem(TOKEN_KEY);
    return { session: null, reason: s.error };
  }
  return { session: s, reason: '' };
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

/**
 * showLogin replaces the page's content with a form to paste a token.
 * @param {HTMLElement} root
 * @param {string} reason why, shown above the form ('' for none)
 */
export function showLogin(root, reason) {
  const input = el('textarea', { id: 'token-input', rows: 5, spellcheck: 'false', autocomplete: 'off',
    placeholder: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…', 'aria-label': 'Token' });
  const error = el('p', { class: 'form-error', role: 'alert' }, reason || '');
  const form = el('form', { class: 'login-card', id: 'login-form' },
    el('h1', {}, 'Sign in to Switchboard'),
    el('p', { class: 'muted' }, 'Paste a bearer token (a JWT). In dev mode, open the login URL that the server printed instead; ',
      el('code', {}, 'switchboard token --user NAME'), ' mints one when a secret is configured.'),
    input, error,
    el('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    el('p', { class: 'muted small' }, 'The token stays in this tab (sessionStorage) and is sent only to this server.'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const s = sessionFrom(input.value);
    if ('error' in s) {
      error.textContent = s.error;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, s.token);
    location.reload();
  });
  fill(root, el('div', { class: 'login' }, form));
  input.focus();
}

// ApiError is a failed API call: the HTTP status and the error body.
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status, 0 when there was no answer
   * @param {string} code the error's code (the API's, or the page's own)
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * api calls the JSON API and returns the decoded reply; it throws an
 * ApiError with the server's message when the status is not 2xx. Replies
 * are not typed here: their shapes are the API's (README.md).
 * @param {Session} session
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>}
 */
export async function api(session, method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: 'Bearer ' + session.token, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached: ' + errorText(e));
  }
  return decodeReply(res);
}

/**
 * decodeReply returns the JSON of a reply (null for 204), or throws an
 * ApiError with the error body's code and message.
 * @param {Response} res
 * @returns {Promise<any>}
 */
export async function decodeReply(res) {
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.status + ' ' + res.statusText);
  }
  return data;
}

/**
 * errorText is what a caught value says: an Error's message, or the value.
 * @param {unknown} e
 * @returns {string}
 */
export function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * byId returns the page's element with the id; the pages have them all.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error('the page has no #' + id);
  return node;
}

/**
 * el builds an element: attributes (on* are listeners; false and null are
 * left out) and children (strings become text, never HTML).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

/**
 * fill replaces node's children with children, as el adds them.
 * @template {Element} T
 * @param {T} node
 * @param {...Child} children
 * @returns {T}
 */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/**
 * @param {Element} node
 * @param {ChildList} children
 */
function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : String(c));
  }
}

/**
 * fmtDuration renders milliseconds for people: 0.61 ms, 12 ms, 1.42 s.
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 100) return ms.toFixed(1).replace(/\.0$/, '') + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(2) + ' s';
  return Math.floor(ms / 60000) + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

/**
 * fmtTime renders an RFC 3339 time in local time, with the date unless it
 * is today.
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

/**
 * pretty returns JSON text indented, or the text as it is.
 * @param {unknown} value
 * @returns {string}
 */
export function pretty(value) {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return JSON.stringify(value, null, 2);
  const t = value.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    try {
      return JSON.stringify(JSON.parse(t), null, 2);
    } catch {
      // not JSON after all
    }
  }
  return value;
}

/**
 * compactJSON renders a value on one line, cut to n characters.
 * @param {unknown} value
 * @param {number} [n]
 * @returns {string}
 */
export function compactJSON(value, n = 80) {
  let s = typeof value === 'string' ? value : JSON.stringify(value);
  if (s === undefined) s = '';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/**
 * statusBadge is a call's or a turn's status as a coloured label.
 * @param {string} status
 * @returns {HTMLSpanElement}
 */
export function statusBadge(status) {
  return el('span', { class: 'badge status-' + status }, String(status).replace(/_/g, ' '));
}

/**
 * shortID abbreviates an id to its last 8 characters: ids are UUIDv7,
 * whose first characters are a timestamp that ids made together share.
 * @param {string | null | undefined} id
 * @returns {string}
 */
export function shortID(id) {
  return id ? '…' + id.slice(-8) : '';
}

/**
 * topbar fills the page header: the brand, links, who is signed in.
 * @param {HTMLElement} header
 * @param {Session | null} session
 * @param {{href: string, text: string, current?: boolean}[]} links
 */
export function topbar(header, session, links) {
  const nav = el('nav', { class: 'top-links' }, ...links.map((l) => el('a', { href: l.href, class: l.current ? 'current' : '' }, l.text)));
  const who = session
    ? el('div', { class: 'who' },
      el('span', { class: 'user', title: session.exp ? 'Token valid until ' + session.exp.toLocaleString() : '' }, session.user),
      el('button', { type: 'button', class: 'ghost', id: 'sign-out', onclick: signOut }, 'Sign out'))
    : null;
  fill(header, el('a', { class: 'brand', href: '/' }, el('img', { src: '/assets/favicon.svg', alt: '' }), 'Switchboard'), nav, who);
}
