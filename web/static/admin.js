// @ts-check
// The admin console: the tool-call log with filters and pages, a call in
// full, stats per tool or server, the health of every MCP server and the
// users' connections of those that act as each user, and any conversation
// with its turns' timing. The view and its filters live in the
// URL's query, so that every screen can be linked to and reloaded.
import {
  api, byId, compactJSON, currentSession, el, errorText, fill, fmtDuration, fmtTime, pretty, shortID, showLogin, statusBadge, topbar, ApiError,
} from './common.js';
import { contentView } from './content.js';
import { CallStatus, Code, MessageType, TurnStatus } from './protocol.js';

/** @typedef {import('./common.js').Session} Session */
/** @typedef {import('./protocol.js').AdminToolCall} AdminToolCall */
/** @typedef {import('./protocol.js').AdminToolCallDetail} AdminToolCallDetail */
/** @typedef {import('./protocol.js').AdminTurn} AdminTurn */
/** @typedef {import('./protocol.js').Conversation} Conversation */
/** @typedef {import('./protocol.js').Message} Message */
/** @typedef {import('./protocol.js').ServerStatus} ServerStatus */
/** @typedef {import('./protocol.js').Icon} Icon */
/** @typedef {import('./protocol.js').ToolCallStats} ToolCallStats */
/** @typedef {import('./protocol.js').AgentStats} AgentStats */
/** @typedef {import('./protocol.js').UserConnection} UserConnection */
/** @typedef {Record<string, string | undefined>} Params a view's query */

/** @type {string[]} */
const STATUSES = Object.values(CallStatus);
const FILTERS = ['user', 'conversation', 'server', 'tool', 'status', 'since', 'until'];
/** @type {[string, string, number][]} the stats' windows: query value, label, length in ms */
const WINDOWS = [['1h', 'Last hour', 3600e3], ['24h', 'Last 24 hours', 86400e3], ['7d', 'Last 7 days', 7 * 86400e3], ['30d', 'Last 30 days', 30 * 86400e3]];
const PAGE = 50;

/** @type {Session} the signed-in admin */
let session = /** @type {any} */ (null); // main sets it before anything else runs
/**
 * The console's lasting elements, made by build.
 * @type {{tabs: Record<string, HTMLAnchorElement>, view: HTMLDivElement, drawer: HTMLElement, drawerTitle: HTMLHeadingElement,
 *   drawerBody: HTMLDivElement, backdrop: HTMLDivElement}}
 */
const ui = /** @type {any} */ ({});
// cursors[i] is the after-cursor of page i of the current listing.
let pages = { key: '', cursors: [''], index: 0 };

function query() {
  return new URLSearchParams(location.search);
}

/**
 * go changes the URL's query and shows the view it names.
 * @param {Params} params
 * @param {boolean} [replace] replace the history entry instead of adding one
 */
function go(params, replace) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const url = location.pathname + (q.toString() ? '?' + q : '');
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render(true);
}

/**
 * setCall opens a call over the current view (or closes it, id empty).
 * @param {string} id
 */
function setCall(id) {
  const q = query();
  if (id) q.set('call', id);
  else q.delete('call');
  history.pushState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
  render();
}

/**
 * @param {Params} changes
 * @returns {Params} the current query with changes
 */
function withQuery(changes) {
  const q = Object.fromEntries(query());
  return { ...q, ...changes };
}

/** @param {unknown} e */
function errorBox(e) {
  if (e instanceof ApiError && e.code === Code.adminOnly) {
    return el('div', { class: 'notice error', id: 'forbidden' },
      el('strong', {}, 'This console is for admins. '),
      `The server answered: ${e.message}. Sign in with an admin's token (role "admin", "admin" in roles, or a user listed in auth.admin_users).`);
  }
  return el('div', { class: 'notice error' }, errorText(e));
}

/** @type {string | null} the query (but the open call) of the view on screen */
let shown = null;

/**
 * render shows the view the URL names; a change of the open call alone
 * leaves the view as it is, unless force.
 * @param {boolean} [force]
 */
function render(force) {
  const q = query();
  const call = q.get('call');
  q.delete('call');
  const key = q.toString();
  if (force === true || key !== shown) {
    shown = key;
    const view = q.get('view') || 'calls';
    for (const [name, link] of Object.entries(ui.tabs)) link.classList.toggle('current', name === view || (name === 'calls' && view === 'conversation'));
    fill(ui.view, el('div', { class: 'loading' }, 'Loading…'));
    /** @type {Record<string, (q: URLSearchParams) => Promise<void>>} */
    const views = { calls: renderCalls, stats: renderStats, servers: renderServers, conversation: renderConversation };
    (views[view] || renderCalls)(q).catch((e) => fill(ui.view, errorBox(e)));
  }
  if (call) openCall(call);
  else closeDrawer(false);
}

// --- Tool calls ------------------------------------------------------------

/**
 * toLocalInput renders an RFC 3339 time for a datetime-local input.
 * @param {string | null} iso
 */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * fromLocalInput is the RFC 3339 time of a datetime-local input's value.
 * @param {string} v
 */
function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** @typedef {{servers: Set<string>, tools: Set<string>}} Names */

/** @type {Names | null} */
let known = null;

/**
 * knownNames fills the server list and the tool suggestions from the
 * ledger's last 30 days.
 * @returns {Promise<Names>}
 */
async function knownNames() {
  if (known) return known;
  /** @type {Names} */
  const names = { servers: new Set(), tools: new Set() };
  try {
    const since = new Date(Date.now() - 30 * 86400e3).toISOString();
    /** @type {{stats: ToolCallStats[]}} */
    const r = await api(session, 'GET', '/api/admin/tool-calls/stats?group_by=tool&since=' + encodeURIComponent(since));
    for (const s of r.stats) {
      names.servers.add(s.server);
      if (s.tool) names.tools.add(s.tool);
    }
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 401)) throw e;
    // other failures: no suggestions (asked again next time), the
    // listing says what is wrong
    return names;
  }
  known = names;
  return known;
}

/** @param {URLSearchParams} q */
async function renderCalls(q) {
  const names = await knownNames();
  const field = (/** @type {string} */ name, /** @type {string} */ label, /** @type {HTMLElement} */ input) => el('label', { class: 'field field-' + name }, el('span', {}, label), input);
  const serverSelect = el('select', { name: 'server', id: 'filter-server' }, el('option', { value: '' }, 'Any server'),
    ...[...new Set([...names.servers, q.get('server') || ''])].filter(Boolean).sort().map((s) => el('option', { value: s }, s)));
  serverSelect.value = q.get('server') || '';
  const statusSelect = el('select', { name: 'status', id: 'filter-status' }, el('option', { value: '' }, 'Any status'),
    ...STATUSES.map((s) => el('option', { value: s }, s.replace(/_/g, ' '))));
  statusSelect.value = q.get('status') || '';
  const input = (/** @type {string} */ name, /** @type {string} */ placeholder, /** @type {Record<string, string>} */ attrs = {}) => el('input', { name, id: 'filter-' + name, value: q.get(name) || '', placeholder, autocomplete: 'off', ...attrs });
  const form = el('form', { class: 'filters', id: 'filters' },
    field('user', 'User', input('user', 'any user')),
    field('conversation', 'Conversation', input('conversation', 'conversation id')),
    field('server', 'Server', serverSelect),
    field('tool', 'Tool', input('tool', 'any tool', { list: 'tool-names' })),
    el('datalist', { id: 'tool-names' }, ...[...names.tools].sort().map((t) => el('option', { value: t }))),
    field('status', 'Status', statusSelect),
    field('since', 'Since', el('input', { type: 'datetime-local', name: 'since', id: 'filter-since', value: toLocalInput(q.get('since')) })),
    field('until', 'Until', el('input', { type: 'datetime-local', name: 'until', id: 'filter-until', value: toLocalInput(q.get('until')) })),
    el('div', { class: 'filter-actions' },
      el('button', { type: 'submit', class: 'primary', id: 'apply-filters' }, 'Apply'),
      el('button', { type: 'button', class: 'ghost', onclick: () => go({}) }, 'Reset')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    /** @type {Params} */
    const params = {};
    for (const k of FILTERS) {
      const v = String(data.get(k) || '').trim();
      params[k] = k === 'since' || k === 'until' ? fromLocalInput(v) : v;
    }
    go(params);
  });

  const filterKey = FILTERS.map((k) => q.get(k) || '').join('\u0000');
  if (pages.key !== filterKey) pages = { key: filterKey, cursors: [''], index: 0 };
  const params = new URLSearchParams();
  for (const k of FILTERS) {
    const v = q.get(k);
    if (v) params.set(k, v);
  }
  params.set('limit', String(PAGE));
  const after = pages.cursors[pages.index];
  if (after) params.set('after', after);
  const section = el('section', { class: 'panel' });
  fill(ui.view, el('div', { class: 'view-head' }, el('h1', {}, 'Tool calls'),
    el('p', { class: 'muted' }, 'Every tool call the assistant made, newest first. Click a row for its arguments and result.')), form, section);
  /** @type {{tool_calls: AdminToolCall[], next_cursor: string}} */
  let r;
  try {
    r = await api(session, 'GET', '/api/admin/tool-calls?' + params);
  } catch (e) {
    fill(section, errorBox(e));
    return;
  }
  if (r.next_cursor) pages.cursors[pages.index + 1] = r.next_cursor;
  const rows = r.tool_calls.map((c) => {
    const row = el('tr', { tabindex: 0, class: 'clickable', dataset: { id: c.id }, onclick: () => setCall(c.id),
      onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter') setCall(c.id); } },
    el('td', { class: 'nowrap', title: c.started_at }, fmtTime(c.started_at)),
    el('td', { class: 'user-cell' }, c.user_id),
    el('td', { class: 'tool-cell' }, el('span', { class: 'server-name' }, c.server), el('span', { class: 'sep' }, ' · '), el('strong', {}, c.tool)),
    el('td', { class: 'agent-cell', title: c.parent_id ? 'inside call ' + c.parent_id : '' },
      c.agent ? el('span', { class: 'agent-badge' }, c.agent) : el('span', { class: 'muted' }, '—'), c.parent_id ? el('span', { class: 'muted small' }, ' ↳ step ' + c.step) : el('span', { class: 'muted small' }, ' step ' + c.step)),
    el('td', { class: 'args-cell' }, el('code', {}, compactJSON(c.arguments, 70))),
    el('td', {}, statusBadge(c.status)),
    el('td', { class: 'num' }, ran(c) ? fmtDuration(c.duration_ms) : '—'),
    el('td', { class: 'mono' }, el('a', { href: '?view=conversation&id=' + encodeURIComponent(c.conversation_id),
      onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); e.stopPropagation(); go({ view: 'conversation', id: c.conversation_id }); } }, shortID(c.conversation_id))));
    return row;
  });
  const table = el('table', { class: 'calls', id: 'calls-table' },
    el('thead', {}, el('tr', {}, ...['Started', 'User', 'Server · tool', 'Agent · step', 'Arguments', 'Status', 'Duration', 'Conversation'].map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows));
  const empty = el('div', { class: 'empty' }, pages.index === 0 ? 'No tool calls match these filters.' : 'No older calls.');
  const pager = el('div', { class: 'pager' },
    el('button', { type: 'button', class: 'ghost', disabled: pages.index === 0, onclick: () => { pages.index = 0; render(true); } }, '⇤ Newest'),
    el('button', { type: 'button', class: 'ghost', id: 'newer', disabled: pages.index === 0, onclick: () => { pages.index -= 1; render(true); } }, '← Newer'),
    el('span', { class: 'muted' }, `Page ${pages.index + 1} · ${r.tool_calls.length} call${r.tool_calls.length === 1 ? '' : 's'}`),
    el('button', { type: 'button', class: 'ghost', id: 'older', disabled: !r.next_cursor, onclick: () => { pages.index += 1; render(true); } }, 'Older →'));
  fill(section, rows.length ? el('div', { class: 'table-wrap' }, table) : empty, pager);
}

/** @type {string[]} */
const NOT_RUN = [CallStatus.running, CallStatus.awaitingApproval, CallStatus.denied];
/** @type {string[]} */
const NOT_FAILED = [CallStatus.succeeded, CallStatus.running, CallStatus.awaitingApproval];

/**
 * ran reports whether a call has run to an end: one denied, awaiting
 * approval or still running has no duration to show.
 * @param {AdminToolCall} c
 */
function ran(c) {
  return !NOT_RUN.includes(c.status);
}

// --- One call --------------------------------------------------------------

/** @param {boolean} updateURL also take the call out of the URL */
function closeDrawer(updateURL) {
  ui.drawer.hidden = true;
  ui.backdrop.hidden = true;
  if (updateURL && query().get('call')) setCall('');
}

/** @param {string} id the call's ledger id */
async function openCall(id) {
  ui.drawer.hidden = false;
  ui.backdrop.hidden = false;
  fill(ui.drawerBody, el('div', { class: 'loading' }, 'Loading…'));
  fill(ui.drawerTitle, 'Tool call');
  /** @type {AdminToolCallDetail} */
  let c;
  try {
    c = (await api(session, 'GET', '/api/admin/tool-calls/' + encodeURIComponent(id))).tool_call;
  } catch (e) {
    fill(ui.drawerBody, errorBox(e));
    return;
  }
  fill(ui.drawerTitle, el('span', { class: 'server-name' }, c.server + ' · '), c.tool, ' ', statusBadge(c.status));
  const link = (/** @type {string} */ text, /** @type {Record<string, string>} */ params) =>
    el('a', { href: '?' + new URLSearchParams(params), onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); go(params); } }, text);
  /** @type {[string, import('./common.js').Child, (string | null)?][]} label, value, title */
  const facts = [
    ['Started', fmtTime(c.started_at), c.started_at],
    ['Finished', c.finished_at ? fmtTime(c.finished_at) : '—', c.finished_at],
    ['Duration', ran(c) ? fmtDuration(c.duration_ms) : 'not run'],
    ['User', link(c.user_id, { user: c.user_id })],
    ['Conversation', link(shortID(c.conversation_id), { view: 'conversation', id: c.conversation_id }), c.conversation_id],
    ['Turn · step', `${shortID(c.turn_id)} · ${c.step}`, c.turn_id],
    ['Exposed as', c.exposed_name],
    ['Model call id', c.call_id || '—'],
    ['Ledger id', c.id],
    ['Result size', c.result_size + ' bytes' + (c.truncated ? ' (truncated for the model)' : '')],
  ];
  if (c.error_class) facts.push(['Error class', c.error_class]);
  if (c.task_id) facts.push(['MCP task', `${c.task_id} · ${c.task_status || 'unknown'}`]);
  /** @type {HTMLElement[]} */
  const sections = [
    el('dl', { class: 'facts' }, ...facts.flatMap(([k, v, title]) => [el('dt', {}, k), el('dd', { title: title || false }, v)])),
    el('h3', {}, 'Arguments'), el('pre', { class: 'code', id: 'call-arguments' }, pretty(c.arguments)),
  ];
  const failed = !NOT_FAILED.includes(c.status);
  // A tool's own error is the first line of its result: shown once.
  if (c.error && !(c.result || '').includes(c.error)) sections.push(el('h3', {}, 'Error'), el('pre', { class: 'code error-text' }, c.error));
  sections.push(el('h3', {}, failed ? 'Result (an error)' : 'Result'),
    el('pre', { class: 'code' + (failed ? ' error-text' : ''), id: 'call-result' }, c.result ? pretty(c.result) : '(none)'));
  if (c.structured_result) sections.push(el('h3', {}, 'Structured result'), el('pre', { class: 'code' }, pretty(c.structured_result)));
  const content = contentView(session, c.content);
  if (content) sections.push(el('h3', {}, 'Content'), content);
  sections.push(el('div', { class: 'drawer-actions' },
    el('button', { type: 'button', class: 'primary', id: 'open-conversation', onclick: () => go({ view: 'conversation', id: c.conversation_id }) }, 'Open conversation'),
    el('button', { type: 'button', class: 'ghost', onclick: () => go({ server: c.server, tool: c.tool }) }, 'Calls of this tool'),
    el('button', { type: 'button', class: 'ghost', onclick: () => go({ user: c.user_id }) }, 'Calls of this user')));
  fill(ui.drawerBody, ...sections);
}

// --- Stats -----------------------------------------------------------------

/** @param {URLSearchParams} q */
async function renderStats(q) {
  const groupBy = q.get('group_by') === 'server' || q.get('group_by') === 'agent' ? /** @type {string} */ (q.get('group_by')) : 'tool';
  const win = WINDOWS.find((w) => w[0] === q.get('window')) || WINDOWS[1];
  const since = new Date(Date.now() - win[2]).toISOString();
  /**
   * @param {string[][]} items value and label
   * @param {string} current
   * @param {(value: string) => void} onpick
   */
  const segmented = (items, current, onpick) => el('div', { class: 'segmented' }, ...items.map(([value, label]) =>
    el('button', { type: 'button', class: value === current ? 'current' : '', 'aria-pressed': value === current ? 'true' : 'false', onclick: () => onpick(value) }, label)));
  const controls = el('div', { class: 'toolbar' },
    el('span', { class: 'muted' }, 'Group by'),
    segmented([['tool', 'Tool'], ['server', 'Server'], ['agent', 'Agent']], groupBy, (v) => go(withQuery({ group_by: v }))),
    el('span', { class: 'muted' }, 'Window'),
    segmented(WINDOWS.map((w) => [w[0], w[1]]), win[0], (v) => go(withQuery({ window: v }))));
  if (groupBy === 'agent') {
    await renderAgentStats(controls, since, win[1]);
    return;
  }
  /** @type {{stats: ToolCallStats[], since: string, until: string}} */
  const r = await api(session, 'GET', `/api/admin/tool-calls/stats?group_by=${groupBy}&since=${encodeURIComponent(since)}`);
  const total = r.stats.reduce((a, s) => ({ count: a.count + s.count, errors: a.errors + s.errors }), { count: 0, errors: 0 });
  const slowest = r.stats.reduce((/** @type {ToolCallStats | null} */ a, s) => (!a || s.p95_ms > a.p95_ms ? s : a), null);
  const card = (/** @type {string} */ label, /** @type {string} */ value, /** @type {string} */ sub = '') => el('div', { class: 'stat-card' }, el('div', { class: 'stat-label' }, label), el('div', { class: 'stat-value' }, value), sub ? el('div', { class: 'muted small' }, sub) : null);
  const summary = el('div', { class: 'stat-cards' },
    card('Calls', total.count.toLocaleString()),
    card('Failed', total.errors.toLocaleString(), 'failed, timed out, cancelled or denied'),
    card(groupBy === 'tool' ? 'Tools used' : 'Servers used', String(r.stats.length)),
    card('Slowest p95', slowest ? fmtDuration(slowest.p95_ms) : '—', slowest ? slowest.server + (slowest.tool ? ' · ' + slowest.tool : '') : ''));
  const rows = r.stats.map((s) => el('tr', {
    class: 'clickable', tabindex: 0,
    onclick: () => go({ server: s.server, tool: s.tool || '', since }),
    onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter') go({ server: s.server, tool: s.tool || '', since }); },
  },
  el('td', { class: 'server-name' }, s.server),
  groupBy === 'tool' ? el('td', {}, el('strong', {}, s.tool)) : null,
  el('td', { class: 'num' }, s.count.toLocaleString()),
  el('td', { class: 'num' }, s.errors.toLocaleString()),
  el('td', { class: 'rate-cell' }, rateBar(s.error_rate)),
  el('td', { class: 'num' }, fmtDuration(s.p50_ms)),
  el('td', { class: 'num' }, fmtDuration(s.p95_ms))));
  const heads = ['Server', ...(groupBy === 'tool' ? ['Tool'] : []), 'Calls', 'Errors', 'Error rate', 'p50', 'p95'];
  const table = el('table', { class: 'stats', id: 'stats-table' },
    el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { class: ['Calls', 'Errors', 'p50', 'p95'].includes(h) ? 'num' : '' }, h)))),
    el('tbody', {}, ...rows));
  fill(ui.view,
    el('div', { class: 'view-head' }, el('h1', {}, 'Stats'),
      el('p', { class: 'muted' }, `${win[1]}, ${fmtTime(r.since)} to ${fmtTime(r.until)}. Error rate and latency count finished calls only. Click a row for its calls.`)),
    controls, summary,
    el('section', { class: 'panel' }, rows.length ? el('div', { class: 'table-wrap' }, table) : el('div', { class: 'empty' }, 'No tool calls in this window.')));
}

/**
 * renderAgentStats shows the turns of the window by agent: turns,
 * handoffs, tokens and latency.
 * @param {HTMLElement} controls
 * @param {string} since
 * @param {string} label the window's
 */
async function renderAgentStats(controls, since, label) {
  /** @type {{stats: AgentStats[], since: string, until: string}} */
  const r = await api(session, 'GET', '/api/admin/agents/stats?since=' + encodeURIComponent(since));
  const heads = ['Agent', 'Turns', 'Handoffs', 'Prompt tokens', 'Completion tokens', 'p50', 'p95'];
  const rows = r.stats.map((s) => el('tr', { dataset: { agent: s.agent } },
    el('td', {}, s.agent ? el('span', { class: 'agent-badge' }, s.agent) : el('span', { class: 'muted' }, '(no agent)')),
    el('td', { class: 'num' }, s.turns.toLocaleString()),
    el('td', { class: 'num' }, s.handoffs.toLocaleString()),
    el('td', { class: 'num' }, s.prompt_tokens.toLocaleString()),
    el('td', { class: 'num' }, s.completion_tokens.toLocaleString()),
    el('td', { class: 'num' }, fmtDuration(s.p50_ms)),
    el('td', { class: 'num' }, fmtDuration(s.p95_ms))));
  const table = el('table', { class: 'stats', id: 'agent-stats-table' },
    el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { class: h === 'Agent' ? '' : 'num' }, h)))),
    el('tbody', {}, ...rows));
  fill(ui.view,
    el('div', { class: 'view-head' }, el('h1', {}, 'Stats'),
      el('p', { class: 'muted' }, `${label}, ${fmtTime(r.since)} to ${fmtTime(r.until)}, turns by the agent each ended as. Latency counts turns that ended.`)),
    controls,
    el('section', { class: 'panel' }, rows.length ? el('div', { class: 'table-wrap' }, table) : el('div', { class: 'empty' }, 'No turns in this window.')));
}

/** @param {number} rate from 0 to 1 */
function rateBar(rate) {
  const pct = Math.round(rate * 1000) / 10;
  const fill = el('span', { class: 'fill' + (rate >= 0.2 ? ' bad' : rate > 0 ? ' warn' : '') });
  fill.style.width = Math.min(100, rate * 100) + '%';
  return el('span', { class: 'rate' }, el('span', { class: 'bar' }, fill), el('span', { class: 'num' }, pct + '%'));
}

// --- Servers ---------------------------------------------------------------

// SAFE_ICON matches the icon URLs the console loads: https:, or a base64
// data: URL of a PNG, JPEG, GIF or WebP image. Never SVG (a document that
// can carry script), never another scheme. The server filters icons too;
// this is the page's own check, and the CSP's img-src allows no more.
const SAFE_ICON = /^(https:\/\/[^\s"'<>]+|data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+=*)$/;

/**
 * iconSrc returns the src of the first icon the console may show, preferring
 * one for a light background (its theme), or null.
 * @param {Icon[] | undefined} icons
 * @returns {string | null}
 */
function iconSrc(icons) {
  const safe = (icons || []).filter((i) => typeof i.src === 'string' && SAFE_ICON.test(i.src) &&
    !/\.svg([?#]|$)/i.test(i.src) && !/svg/i.test(i.mime_type || ''));
  const pick = safe.find((i) => i.theme !== 'dark') || safe[0];
  return pick ? pick.src : null;
}

/**
 * icon renders an icon as an <img> of size px, or nothing when none may be
 * shown.
 * @param {Icon[] | undefined} icons
 * @param {number} px
 */
function icon(icons, px) {
  const src = iconSrc(icons);
  if (!src) return null;
  const img = el('img', { class: 'icon', src, alt: '', width: px, height: px, loading: 'lazy', referrerpolicy: 'no-referrer', decoding: 'async' });
  img.style.verticalAlign = 'text-bottom';
  img.style.marginRight = '0.35em';
  return img;
}

/**
 * capabilityNames lists a server's declared capabilities by name, with the
 * flags each sets (tools: listChanged), or a dash for none.
 * @param {Record<string, unknown> | undefined} caps
 * @returns {string}
 */
function capabilityNames(caps) {
  const names = Object.keys(caps || {}).filter((k) => caps && caps[k] != null).sort().map((k) => {
    const v = caps ? caps[k] : null;
    const flags = v && typeof v === 'object' ? Object.keys(v).filter((f) => /** @type {Record<string, unknown>} */ (v)[f] === true) : [];
    return flags.length ? `${k} (${flags.join(', ')})` : k;
  });
  return names.length ? names.join(', ') : '—';
}

async function renderServers() {
  /** @type {[{servers: ServerStatus[]}, {connections: UserConnection[]}]} */
  const [r, conns] = await Promise.all([api(session, 'GET', '/api/admin/servers'), api(session, 'GET', '/api/admin/connections')]);
  const reload = el('button', { type: 'button', class: 'ghost', id: 'reload-servers' }, 'Reload configuration');
  const message = el('span', { class: 'muted small', role: 'status' });
  reload.addEventListener('click', async () => {
    reload.disabled = true;
    message.textContent = 'Reloading…';
    try {
      await api(session, 'POST', '/api/admin/servers/reload');
      render(true);
    } catch (e) {
      message.textContent = errorText(e);
      reload.disabled = false;
    }
  });
  const cards = r.servers.map((s) => {
    const facts = [
      ['Transport', s.transport],
      ['Connected', s.connected_at ? fmtTime(s.connected_at) : '—'],
      ['Restarts', String(s.restarts)],
      ['Required', s.required ? 'yes' : 'no'],
    ];
    if (s.protocol) {
      const p = s.protocol;
      facts.push(['Protocol', `${p.version} (${p.era})`],
        ['Server', [p.server_name, p.server_version].filter(Boolean).join(' ') || '—'],
        ['Capabilities', capabilityNames(p.capabilities)]);
    }
    /** @type {HTMLElement[]} */
    const parts = [
      el('div', { class: 'server-head' }, el('h2', {}, icon(s.icons, 20), s.name), el('span', { class: 'badge state-' + s.state }, s.state)),
      el('dl', { class: 'facts compact' }, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    ];
    if (s.last_error) parts.push(el('div', { class: 'notice error small' }, el('strong', {}, 'Last error'), s.last_error_at ? ` (${fmtTime(s.last_error_at)})` : '', ': ', s.last_error));
    parts.push(el('h3', {}, `Tools (${s.tools.length})`),
      s.tools.length ? el('div', { class: 'chips' }, ...s.tools.map((t) => el('span', { class: 'chip static' }, icon((s.tool_icons || {})[t], 14), t))) : el('p', { class: 'muted small' }, 'None.'));
    if (s.quarantined.length) {
      parts.push(el('h3', {}, `Quarantined (${s.quarantined.length})`),
        el('ul', { class: 'quarantined' }, ...s.quarantined.map((q) => el('li', {}, el('strong', {}, q.tool), ': ', q.reason))));
    }
    const tail = el('pre', { class: 'code stderr' }, s.stderr_tail.length ? s.stderr_tail.join('\n') : '(no output)');
    parts.push(el('h3', {}, 'Stderr (last lines)'), tail);
    const card = el('article', { class: 'server-card', dataset: { server: s.name } }, ...parts);
    requestAnimationFrame(() => { tail.scrollTop = tail.scrollHeight; });
    return card;
  });
  fill(ui.view,
    el('div', { class: 'view-head row' }, el('div', {}, el('h1', {}, 'MCP servers'),
      el('p', { class: 'muted' }, 'Connection state, tools, quarantined tools and the latest output of every configured server.')),
    el('div', { class: 'head-actions' }, message, reload)),
    cards.length ? el('div', { class: 'server-grid' }, ...cards) : el('div', { class: 'empty' }, 'No MCP servers are configured.'),
    connectionsPanel(conns.connections));
}

/**
 * connectionsPanel lists the users' credentials for the servers that act
 * as each user (never a token), each with a button to revoke it.
 * @param {UserConnection[]} conns
 */
function connectionsPanel(conns) {
  const head = el('div', { class: 'view-head' }, el('h2', {}, 'Connections'),
    el('p', { class: 'muted' }, 'The users who connected a server that acts as each user: an OAuth sign-in or their secrets. Revoking one revokes the grant where the server can, then forgets it.'));
  if (!conns.length) return el('section', { class: 'connections-admin' }, head, el('div', { class: 'panel empty' }, 'Nobody has connected a server.'));
  const message = el('p', { class: 'muted small', role: 'status' });
  const rows = conns.map((c) => {
    const revoke = el('button', { type: 'button', class: 'danger revoke', 'aria-label': `Revoke ${c.user_id}'s ${c.server}` }, 'Revoke');
    revoke.addEventListener('click', async () => {
      revoke.disabled = true;
      try {
        await api(session, 'DELETE', `/api/admin/connections/${encodeURIComponent(c.user_id || '')}/${encodeURIComponent(c.server)}`);
        render(true);
      } catch (e) {
        message.textContent = errorText(e);
        revoke.disabled = false;
      }
    });
    return el('tr', { dataset: { user: c.user_id || '', server: c.server } },
      el('td', { class: 'user-cell' }, c.user_id || ''),
      el('td', {}, el('strong', {}, c.server)),
      el('td', { class: 'muted' }, c.type),
      el('td', {}, c.scopes && c.scopes.length ? c.scopes.join(' ') : '—'),
      el('td', { class: 'nowrap' }, fmtTime(c.created_at)),
      el('td', { class: 'nowrap' }, fmtTime(c.last_used_at)),
      el('td', { class: 'nowrap' }, fmtTime(c.expires_at)),
      el('td', { class: 'num' }, revoke));
  });
  const heads = ['User', 'Server', 'Type', 'Scopes', 'Connected', 'Last used', 'Token expires', ''];
  return el('section', { class: 'connections-admin' }, head,
    el('div', { class: 'panel' }, el('div', { class: 'table-wrap' }, el('table', { id: 'connections-table' },
      el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows)))),
    message);
}

// --- One conversation --------------------------------------------------------

/** @param {URLSearchParams} q */
async function renderConversation(q) {
  const id = q.get('id');
  /** @type {{conversation: Conversation, turns: AdminTurn[], messages: Message[]}} */
  const r = await api(session, 'GET', '/api/admin/conversations/' + encodeURIComponent(id || ''));
  const c = r.conversation;
  /** @type {Map<string, Message[]>} messages by turn id, '' for those of no turn */
  const byTurn = new Map();
  for (const m of r.messages) {
    const turn = m.turn_id || ''; // the API leaves turn_id out when there is none
    const list = byTurn.get(turn);
    if (list) list.push(m);
    else byTurn.set(turn, [m]);
  }
  const turns = r.turns.map((t, i) => {
    // The time split is Switchboard's work; the wall clock also counts
    // waiting, e.g. for a person to approve a call.
    const total = t.timing.llm_ms + t.timing.tools_ms + t.timing.store_ms + t.timing.overhead_ms;
    const waited = t.duration_ms !== null && t.duration_ms > total * 1.5 + 50;
    const seg = (/** @type {string} */ cls, /** @type {number} */ ms, /** @type {string} */ label) => {
      const s = el('span', { class: 'seg ' + cls, title: `${label}: ${fmtDuration(ms)}` });
      s.style.flexGrow = String(total > 0 ? ms / total : 0);
      return s;
    };
    const legend = (/** @type {string} */ cls, /** @type {string} */ label, /** @type {number} */ ms) => el('span', { class: 'legend' }, el('span', { class: 'swatch ' + cls }), `${label} ${fmtDuration(ms)}`);
    const calls = t.tool_calls.map((tc) => el('tr', { class: 'clickable', tabindex: 0, onclick: () => setCall(tc.id) },
      el('td', { class: 'muted small' }, `step ${tc.step}${tc.agent ? ' · ' + tc.agent : ''}${tc.parent_id ? ' ↳' : ''}`),
      el('td', {}, el('span', { class: 'server-name' }, tc.server + ' · '), el('strong', {}, tc.tool)),
      el('td', { class: 'args-cell' }, el('code', {}, compactJSON(tc.arguments, 60))),
      el('td', {}, statusBadge(tc.status)),
      el('td', { class: 'num' }, ran(tc) ? fmtDuration(tc.duration_ms) : '—')));
    return el('article', { class: 'turn' },
      el('div', { class: 'turn-head' },
        el('h2', {}, `Turn ${i + 1}`), statusBadge(t.status),
        el('span', { class: 'muted' }, fmtTime(t.started_at)),
        el('span', { class: 'turn-stat', title: 'model + tools + store + overhead' }, el('strong', {}, fmtDuration(total)), ' working'),
        waited ? el('span', { class: 'turn-stat', title: 'from the first request to the end of the turn' }, `${fmtDuration(t.duration_ms)} wall clock (waiting included)`) : null,
        t.duration_ms === null && t.status !== TurnStatus.running ? el('span', { class: 'turn-stat' }, 'not finished') : null,
        t.agent ? el('span', { class: 'agent-badge', title: 'the agent the turn ended as' }, t.agent) : null,
        t.handoffs ? el('span', { class: 'turn-stat' }, `${t.handoffs} handoff${t.handoffs === 1 ? '' : 's'}`) : null,
        el('span', { class: 'turn-stat' }, `${t.steps} model call${t.steps === 1 ? '' : 's'}`),
        el('span', { class: 'turn-stat' }, `${(t.prompt_tokens + t.completion_tokens).toLocaleString()} tokens`)),
      el('div', { class: 'timing' }, seg('llm', t.timing.llm_ms, 'Model'), seg('tools', t.timing.tools_ms, 'Tools'), seg('store', t.timing.store_ms, 'Store'), seg('overhead', t.timing.overhead_ms, 'Overhead')),
      el('div', { class: 'legends' }, legend('llm', 'Model', t.timing.llm_ms), legend('tools', 'Tools', t.timing.tools_ms), legend('store', 'Store', t.timing.store_ms), legend('overhead', 'Overhead', t.timing.overhead_ms)),
      t.error ? el('div', { class: 'notice error small' }, t.error) : null,
      el('div', { class: 'transcript' }, ...(byTurn.get(t.id) || []).map(renderMessage)),
      calls.length ? el('table', { class: 'calls compact' }, el('tbody', {}, ...calls)) : null);
  });
  const orphans = byTurn.get('') || [];
  fill(ui.view,
    el('div', { class: 'view-head' },
      el('a', { href: '?', class: 'back', onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); history.back(); } }, '← Back'),
      el('h1', {}, c.title || 'Untitled conversation'),
      el('p', { class: 'muted' }, 'User ', el('a', { href: '?user=' + encodeURIComponent(c.user_id), onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); go({ user: c.user_id }); } }, c.user_id),
        ` · ${r.turns.length} turn${r.turns.length === 1 ? '' : 's'} · started ${fmtTime(c.created_at)} · `, el('span', { class: 'mono' }, c.id))),
    orphans.length ? el('div', { class: 'transcript' }, ...orphans.map(renderMessage)) : null,
    el('div', { class: 'turns' }, ...turns));
}

/** @param {Message} m */
function renderMessage(m) {
  let body;
  if (m.type === MessageType.toolCall) {
    body = [m.content ? el('div', { class: 'text' }, m.content) : null,
      ...(m.tool_calls || []).map((tc) => el('div', { class: 'call-line' }, '→ ', el('strong', {}, tc.name), ' ', el('code', {}, compactJSON(tc.arguments, 120))))];
  } else if (m.type === MessageType.toolResult) {
    body = el('details', { class: 'result-line' }, el('summary', {}, '← ', el('strong', {}, m.tool_name || 'result'), ' ', el('span', { class: 'muted' }, compactJSON(m.content, 100))), el('pre', { class: 'code' }, pretty(m.content)));
  } else if (m.type === MessageType.handoff && m.handoff) {
    body = el('div', { class: 'handoff-line' }, '⇄ ', el('strong', {}, m.handoff.from), ' handed off to ', el('strong', {}, m.handoff.to));
  } else {
    body = el('div', { class: 'text' }, m.content);
  }
  // A message a regenerated answer replaced: kept, dimmed, with the turn
  // that answered again.
  const replaced = m.superseded_by
    ? el('div', { class: 'superseded-note', title: m.superseded_by }, `replaced: answered again in turn ${shortID(m.superseded_by)}`)
    : null;
  // The user's rating of the message, given in a ChatKit frontend.
  const rated = m.feedback
    ? el('div', { class: 'feedback-note feedback-' + m.feedback }, m.feedback === 'positive' ? 'user feedback: 👍 positive' : 'user feedback: 👎 negative')
    : null;
  return el('div', { class: `line role-${m.role} type-${m.type}${m.superseded_by ? ' superseded' : ''}` },
    el('span', { class: 'line-role' }, m.role, m.agent ? el('span', { class: 'agent-badge small' }, m.agent) : null), el('div', { class: 'line-body' }, body, replaced, rated));
}

// --- Page ------------------------------------------------------------------

/** @param {HTMLElement} root */
function build(root) {
  const tab = (/** @type {string} */ view, /** @type {string} */ text) => el('a', { href: view === 'calls' ? '?' : '?view=' + view, id: 'tab-' + view,
    onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); go(view === 'calls' ? {} : { view }); } }, text);
  ui.tabs = { calls: tab('calls', 'Tool calls'), stats: tab('stats', 'Stats'), servers: tab('servers', 'Servers') };
  ui.view = el('div', { class: 'view', id: 'view' });
  ui.drawerTitle = el('h2', { class: 'drawer-title' });
  ui.drawerBody = el('div', { class: 'drawer-body', id: 'call-detail' });
  ui.drawer = el('aside', { class: 'drawer', id: 'drawer', hidden: true, 'aria-label': 'Tool call' },
    el('div', { class: 'drawer-head' }, ui.drawerTitle,
      el('button', { type: 'button', class: 'ghost close', id: 'close-drawer', 'aria-label': 'Close', onclick: () => closeDrawer(true) }, '✕')),
    ui.drawerBody);
  ui.backdrop = el('div', { class: 'backdrop', hidden: true, onclick: () => closeDrawer(true) });
  fill(root, el('nav', { class: 'tabs' }, ...Object.values(ui.tabs)), ui.view, ui.backdrop, ui.drawer);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !ui.drawer.hidden) closeDrawer(true); });
  window.addEventListener('popstate', () => render());
}

function main() {
  const header = byId('topbar');
  const root = byId('root');
  const cur = currentSession();
  if (!cur.session) {
    topbar(header, null, []);
    showLogin(root, cur.reason);
    return;
  }
  session = cur.session;
  topbar(header, session, [{ href: '/', text: 'Chat' }, { href: '/admin', text: 'Admin', current: true }]);
  build(root);
  render();
}

main();
