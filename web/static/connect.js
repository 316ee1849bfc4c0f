// @ts-check
// Connecting the MCP servers that act as each user, on the chat page: the
// card an answer shows when a call of such a server did not run because the
// user has not connected it ("Connect <server>", then "Retry"), and the
// sidebar's list of the user's connections with Connect and Disconnect.
//
// An OAuth server's sign-in opens in a window of its own, which goes
// through the authorization server and ends on the callback page
// (callback.js). That page tells this one over a BroadcastChannel: the chat
// page's Cross-Origin-Opener-Policy (same-origin) and the detour through
// another origin leave the window no opener to post to. A user_secret
// server takes its secrets in a small form instead.
import { api, el, errorText, fill, fmtTime } from './common.js';

/** @typedef {import('./common.js').Session} Session */
/** @typedef {import('./protocol.js').UserConnection} UserConnection */

/**
 * The channel callback.js posts on when a sign-in ends:
 * {type: 'connection', ok, server} (server is '' when it failed).
 */
const CHANNEL = 'switchboard-connections';

/**
 * What callback.js posts.
 * @typedef {{type: 'connection', ok: boolean, server: string}} ConnectionMessage
 */

// The states of a card and of the sidebar's entries, in data-state.
const NEEDED = 'needed';
const WAITING = 'waiting'; // a sign-in window is open
const CONNECTED = 'connected';

let uniq = 0;

// SignInBlocked is a sign-in window the browser did not open: the page
// offers the URL as a link instead.
class SignInBlocked extends Error {
  /** @param {string} url */
  constructor(url) {
    super('The browser blocked the sign-in window.');
    this.url = url;
  }
}

// Connections is the page's knowledge of the user's connections: the
// cards in the thread, the sidebar's list, and the channel.
export class Connections {
  /**
   * @param {Session} session
   * @param {{retry: (content: string) => boolean}} hooks retry sends a message again, false if it cannot now (a turn runs)
   */
  constructor(session, hooks) {
    this.session = session;
    this.hooks = hooks;
    /** @type {Set<ConnectCard>} the cards in the thread */
    this.cards = new Set();
    /** @type {UserConnection[] | null} the last list, null before it came */
    this.list = null;
    this.listEl = el('ul', { class: 'connection-list', id: 'connection-list' });
    this.panel = el('section', { class: 'connections', id: 'connections', hidden: true, 'aria-labelledby': 'connections-title' },
      el('h2', { class: 'sidebar-title', id: 'connections-title' }, 'Connections'), this.listEl);
    /** @type {Map<string, HTMLElement>} the status line of a sidebar entry waiting for its sign-in */
    this.waiting = new Map();
    /** @type {BroadcastChannel | null} */
    this.channel = null;
    try {
      this.channel = new BroadcastChannel(CHANNEL);
      this.channel.addEventListener('message', (e) => this.told(/** @type {ConnectionMessage} */ (e.data)));
    } catch {
      // No BroadcastChannel: a card offers Retry as soon as its sign-in
      // window opens.
    }
  }

  /** @param {string} server */
  path(server) {
    return `/api/${encodeURIComponent(this.session.user)}/connections/${encodeURIComponent(server)}`;
  }

  /**
   * card makes the card of a call that needs server connected.
   * @param {string} server
   * @param {string} authorizationUrl '' for a user_secret server
   * @param {string} asked the user's message the answer was to, which Retry sends again
   */
  card(server, authorizationUrl, asked) {
    const card = new ConnectCard(this, server, authorizationUrl, asked);
    this.cards.add(card);
    return card;
  }

  /** forget drops the cards, whose thread was cleared. */
  forget() {
    this.cards.clear();
  }

  /**
   * told handles what the callback page posted: the cards and the list of
   * the server it names turn to connected, or the sign-ins waiting are
   * told that it failed.
   * @param {ConnectionMessage} msg
   */
  told(msg) {
    if (!msg || msg.type !== 'connection') return;
    if (msg.ok) {
      for (const c of this.cards) if (c.server === msg.server) c.connected();
      this.waiting.delete(msg.server);
      this.load();
      return;
    }
    for (const c of this.cards) if (c.state === WAITING) c.signInFailed();
    for (const status of this.waiting.values()) status.textContent = 'The sign-in did not complete: the window that opened says why.';
  }

  /**
   * saved is told that this page connected server (its secrets).
   * @param {string} server
   */
  saved(server) {
    for (const c of this.cards) if (c.server === server) c.connected();
    this.load();
  }

  /**
   * signIn opens the sign-in to server in a window of its own: at url,
   * or at one asked for now. The window opens before anything is
   * awaited, in the click's own task, where popup blockers let it.
   * Throws SignInBlocked (with the URL to offer as a link) when the
   * browser opened none, an ApiError when no URL could be had.
   * @param {string} server
   * @param {string} [url] a sign-in URL not used yet
   */
  async signIn(server, url) {
    const features = 'popup=yes,width=520,height=720';
    const win = window.open(url || 'about:blank', '_blank', features);
    if (url) {
      if (!win) throw new SignInBlocked(url);
      return;
    }
    let fresh;
    try {
      /** @type {{authorization_url: string}} */
      const r = await api(this.session, 'POST', this.path(server));
      fresh = r.authorization_url;
    } catch (e) {
      if (win) win.close();
      throw e;
    }
    if (!win || win.closed) throw new SignInBlocked(fresh);
    win.location.href = fresh;
  }

  /**
   * secretsForm asks for a user_secret server's secrets (named by the
   * connections list, each with what it is for) and saves them.
   * @param {UserConnection} conn
   * @param {HTMLElement} status where to say what went wrong
   * @returns {HTMLFormElement}
   */
  secretsForm(conn, status) {
    const inputs = Object.entries(conn.secrets || {}).sort(([a], [b]) => a.localeCompare(b)).map(([name, what]) => {
      const id = 'secret-' + (++uniq);
      const input = el('input', { id, name, type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
        'aria-describedby': id + '-what' });
      return { name, input, field: el('div', { class: 'secret-field' },
        el('label', { for: id }, el('code', {}, name)),
        input,
        el('span', { class: 'muted small', id: id + '-what' }, what)) };
    });
    const save = el('button', { type: 'submit', class: 'primary save-secrets' }, 'Save');
    const form = el('form', { class: 'secrets-form', 'aria-label': 'Secrets for ' + conn.server }, ...inputs.map((i) => i.field), save);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      /** @type {Record<string, string>} */
      const secrets = {};
      for (const i of inputs) secrets[i.name] = i.input.value;
      save.disabled = true;
      status.textContent = 'Saving…';
      status.classList.remove('error-text');
      try {
        await api(this.session, 'POST', this.path(conn.server), { secrets });
      } catch (err) {
        status.textContent = errorText(err);
        status.classList.add('error-text');
        save.disabled = false;
        return;
      }
      status.textContent = '';
      this.saved(conn.server);
    });
    return form;
  }

  /**
   * connection returns the user's connection of server from the list,
   * loading it when it has not come yet.
   * @param {string} server
   */
  async connection(server) {
    if (!this.list) await this.load();
    return (this.list || []).find((c) => c.server === server);
  }

  /** load reads the user's connections and lists them in the sidebar. */
  async load() {
    try {
      /** @type {{connections: UserConnection[]}} */
      const r = await api(this.session, 'GET', `/api/${encodeURIComponent(this.session.user)}/connections`);
      this.list = r.connections;
    } catch (e) {
      fill(this.listEl, el('li', { class: 'muted small' }, errorText(e)));
      return;
    }
    this.panel.hidden = this.list.length === 0;
    fill(this.listEl, ...this.list.map((c) => this.entry(c)));
  }

  /**
   * entry is a connection in the sidebar: its state and a button.
   * @param {UserConnection} c
   */
  entry(c) {
    const status = el('p', { class: 'connection-status small', role: 'status' });
    const slot = el('div', { class: 'connection-form' });
    const button = el('button', { type: 'button', class: 'ghost connection-action' }, c.connected ? 'Disconnect' : 'Connect');
    button.setAttribute('aria-label', (c.connected ? 'Disconnect ' : 'Connect ') + c.server);
    const badge = el('span', { class: 'badge ' + (c.connected ? 'conn-on' : 'conn-off') }, c.connected ? 'connected' : 'not connected');
    const facts = [c.connected && c.created_at ? 'Connected ' + fmtTime(c.created_at) : '',
      c.last_used_at ? 'last used ' + fmtTime(c.last_used_at) : '', c.scopes && c.scopes.length ? 'scopes: ' + c.scopes.join(' ') : '']
      .filter(Boolean).join(', ');
    const waiting = !c.connected && this.waiting.has(c.server);
    const item = el('li', { class: 'connection-item', dataset: { server: c.server, state: c.connected ? CONNECTED : waiting ? WAITING : NEEDED } },
      el('div', { class: 'connection-row' }, el('span', { class: 'connection-name', title: facts }, c.server), badge, button),
      slot, status);
    if (waiting) {
      this.waiting.set(c.server, status);
      status.textContent = 'Finish signing in in the window that opened.';
    }
    button.addEventListener('click', async () => {
      status.textContent = '';
      status.classList.remove('error-text');
      if (c.connected) {
        button.disabled = true;
        try {
          await api(this.session, 'DELETE', this.path(c.server));
        } catch (e) {
          status.textContent = errorText(e);
          status.classList.add('error-text');
          button.disabled = false;
          return;
        }
        this.load();
        return;
      }
      if (c.secrets) {
        fill(slot, slot.firstChild ? null : this.secretsForm(c, status));
        const first = slot.querySelector('input');
        if (first) first.focus();
        return;
      }
      item.dataset.state = WAITING;
      this.waiting.set(c.server, status);
      try {
        await this.signIn(c.server);
        status.textContent = 'Finish signing in in the window that opened.';
      } catch (e) {
        offerLink(status, e);
      }
    });
    return item;
  }
}

/**
 * offerLink says why a sign-in window did not open, with the sign-in as a
 * link when the browser blocked the window.
 * @param {HTMLElement} status
 * @param {unknown} e
 */
function offerLink(status, e) {
  if (e instanceof SignInBlocked) {
    fill(status, 'The browser blocked the sign-in window: ',
      el('a', { href: e.url, target: '_blank', rel: 'noopener', class: 'sign-in-link' }, 'open the sign-in page'), '.');
    return;
  }
  status.textContent = errorText(e);
  status.classList.add('error-text');
}

// ConnectCard is the card of an answer whose call did not run because the
// user has not connected its server: Connect (a sign-in window, or a form
// for secrets), then, once connected, Retry.
export class ConnectCard {
  /**
   * @param {Connections} conns
   * @param {string} server
   * @param {string} url the sign-in URL the stream sent, '' for none
   * @param {string} asked the message Retry sends again, '' when unknown
   */
  constructor(conns, server, url, asked) {
    this.conns = conns;
    this.server = server;
    this.url = url;
    this.asked = asked;
    this.state = NEEDED;
    const id = 'connect-' + (++uniq);
    this.title = el('strong', { class: 'connect-title', id }, 'Connect ' + server);
    this.text = el('p', { class: 'connect-text' }, url
      ? `${server} acts as you: sign in to it so that its calls can run, then retry.`
      : `${server} acts as you: give it your secrets so that its calls can run, then retry.`);
    this.connectButton = el('button', { type: 'button', class: 'primary connect' }, 'Connect ' + server);
    this.retryButton = el('button', { type: 'button', class: 'retry', hidden: true }, 'Retry');
    this.slot = el('div', { class: 'connect-form' });
    this.status = el('p', { class: 'connect-status small', role: 'status' });
    this.node = el('div', { class: 'connect-card', role: 'group', 'aria-labelledby': id, dataset: { server, state: NEEDED } },
      el('div', { class: 'connect-head' }, this.title),
      this.text, this.slot,
      el('div', { class: 'connect-actions' }, this.connectButton, this.retryButton),
      this.status);
    this.connectButton.addEventListener('click', () => this.connect());
    this.retryButton.addEventListener('click', () => this.retry());
    if (!url) this.askSecrets();
  }

  /** @param {string} state */
  setState(state) {
    this.state = state;
    this.node.dataset.state = state;
  }

  // askSecrets shows the form of a user_secret server, which the
  // connections list describes; an OAuth server whose sign-in URL could
  // not be made when the answer streamed keeps its button, which asks
  // for one.
  async askSecrets() {
    const conn = await this.conns.connection(this.server);
    if (!conn || !conn.secrets || this.state === CONNECTED) return;
    this.connectButton.hidden = true;
    fill(this.slot, this.conns.secretsForm(conn, this.status));
  }

  async connect() {
    this.status.classList.remove('error-text');
    const url = this.url;
    this.url = ''; // a sign-in's state is good once: the next one asks for a new URL
    this.setState(WAITING);
    this.connectButton.textContent = 'Sign in again';
    try {
      await this.conns.signIn(this.server, url);
    } catch (e) {
      offerLink(this.status, e);
      return;
    }
    this.status.textContent = `Finish signing in to ${this.server} in the window that opened; this card changes when you are done.`;
    if (!this.conns.channel) this.offerRetry();
  }

  signInFailed() {
    this.setState(NEEDED);
    this.status.textContent = 'The sign-in did not complete: the window that opened says why. Connect to try again.';
  }

  connected() {
    if (this.state === CONNECTED) return;
    this.setState(CONNECTED);
    this.title.textContent = this.server + ' is connected';
    this.text.textContent = `Calls of ${this.server} now act as you.` + (this.asked ? ' Retry to send your message again.' : ' Send your message again.');
    this.status.textContent = '';
    // Focus moves to Retry only from the card's own button (or from
    // nowhere), never away from what the user is typing in.
    const focus = document.activeElement === this.connectButton || document.activeElement === document.body || this.slot.contains(document.activeElement);
    fill(this.slot);
    this.connectButton.hidden = true;
    this.offerRetry(focus);
  }

  /** @param {boolean} [focus] */
  offerRetry(focus) {
    if (!this.asked) return;
    this.retryButton.hidden = false;
    this.retryButton.classList.add('primary');
    if (focus) this.retryButton.focus();
  }

  retry() {
    if (this.retryButton.disabled || !this.conns.hooks.retry(this.asked)) return;
    this.retryButton.hidden = true;
    this.status.textContent = 'Sent again below.';
  }
}
