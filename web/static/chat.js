// @ts-check
// The chat page: conversations on the left, the thread on the right. Answers
// stream in over Switchboard's UI message stream (the Vercel AI SDK's
// protocol), read with fetch and a ReadableStream; each tool call is a card
// that opens to its arguments, result, status and duration, and a call that
// needs approval asks for it with two buttons. A call of a server the user
// has not connected shows a card to connect it, then to retry (connect.js).
import {
  api, byId, currentSession, decodeReply, el, errorText, fill, fmtDuration, fmtTime, pretty, showLogin, statusBadge, topbar, ApiError,
} from './common.js';
import { Connections } from './connect.js';
import { contentView } from './content.js';
import { inputForm } from './elicit.js';
import { CallStatus, Code, MessageType, Part, Role, TurnStatus, readStream } from './protocol.js';

// Card states of the page's own, before the ledger tells a reopened
// conversation's calls' status: a call the transcript has a result for,
// and one it has none for.
const SHOWN_DONE = 'done';
const SHOWN_NO_RESULT = 'no_result';

/** @typedef {import('./common.js').Session} Session */
/** @typedef {import('./protocol.js').StreamPart} StreamPart */
/** @typedef {import('./protocol.js').Conversation} Conversation */
/** @typedef {import('./protocol.js').Message} Message */
/** @typedef {import('./protocol.js').ToolCallRow} ToolCallRow */
/** @typedef {import('./protocol.js').ConnectionRequiredData} ConnectionRequiredData */
/** @typedef {import('./protocol.js').InputRequest} InputRequest */

/** @type {Session} the signed-in user */
let session = /** @type {any} */ (null); // main sets it before anything else runs
/** @type {Connections} the user's connections: the cards to connect a server, the sidebar's list */
let connections = /** @type {any} */ (null); // main sets it too

const state = {
  /** @type {Conversation[]} */
  conversations: [],
  /** @type {string | null} the conversation's id, null for a new chat */
  current: null,
  busy: false,
  /** @type {AbortController | null} aborts the request being streamed */
  abort: null,
  /** @type {Map<string, ToolCard>} tool cards by ledger id (streamed) or model call id (transcript) */
  cards: new Map(),
  /** @type {import('./protocol.js').AgentInfo[]} the agents the user may use; none without agents */
  agents: [],
};

/**
 * The page's lasting elements, made by build.
 * @type {{list: HTMLUListElement, thread: HTMLDivElement, scroller: HTMLDivElement, input: HTMLTextAreaElement,
 *   send: HTMLButtonElement, stop: HTMLButtonElement, empty: HTMLDivElement, agent: HTMLSelectElement}}
 */
const ui = /** @type {any} */ ({});

// ToolCard shows one tool call.
class ToolCard {
  /**
   * @param {string} key the ledger id (streamed) or the model's call id (transcript)
   * @param {string} title
   * @param {AssistantBlock} block the answer the card is in
   */
  constructor(key, title, block) {
    this.block = block;
    this.key = key;
    this.title = el('span', { class: 'tool-title' }, title || 'tool');
    this.badge = statusBadge(CallStatus.running);
    this.dur = el('span', { class: 'tool-dur' });
    this.args = el('pre', { class: 'code args' });
    this.resultLabel = el('h4', {}, 'Result');
    this.result = el('pre', { class: 'code result' }, '…');
    /** @type {HTMLDivElement} the result's images, audio and files */
    this.content = el('div', { class: 'tool-content-slot' });
    this.meta = el('dl', { class: 'tool-meta' });
    this.approval = el('div', { class: 'approval', hidden: true });
    this.details = el('details', {},
      el('summary', {}, el('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '⚙'), this.title, this.badge, this.dur),
      el('div', { class: 'tool-body' }, this.meta, el('h4', {}, 'Arguments'), this.args, this.resultLabel, this.result, this.content));
    this.node = el('div', { class: 'tool-card', dataset: { key } }, this.details, this.approval);
    /** @type {string} a CallStatus, or one of the page's SHOWN_ states */
    this.status = CallStatus.running;
    this.ledgerID = key; // streamed cards are keyed by the ledger's id
    /** @type {number | null} */
    this.durationMS = null;
    this.server = '';
    this.tool = '';
  }

  /**
   * setNames titles the card with its server and tool.
   * @param {string} server
   * @param {string} tool
   */
  setNames(server, tool) {
    this.server = server;
    this.tool = tool;
    this.title.textContent = server + ' · ' + tool;
    this.renderMeta();
  }

  /** @param {unknown} input the call's arguments */
  setInput(input) {
    this.args.textContent = pretty(input) || '{}';
  }

  /**
   * @param {string} status a CallStatus, or one of the page's SHOWN_ states
   * @param {number | null} [durationMS] kept as it was when absent
   */
  setStatus(status, durationMS) {
    this.status = status;
    const badge = statusBadge(status);
    this.badge.replaceWith(badge);
    this.badge = badge;
    this.node.dataset.status = status;
    if (status === CallStatus.denied || status === CallStatus.awaitingApproval) {
      this.durationMS = null;
      this.dur.textContent = status === CallStatus.denied ? 'not run' : '';
    } else if (durationMS !== undefined && durationMS !== null) {
      this.durationMS = durationMS;
      this.dur.textContent = fmtDuration(durationMS);
    }
    if (status !== CallStatus.awaitingApproval) this.approval.hidden = true;
    this.renderMeta();
  }

  /**
   * setProgress shows the server's last report of the running call.
   * @param {import('./protocol.js').ToolProgress} p
   */
  setProgress(p) {
    if (this.status !== CallStatus.running) return;
    const count = p.total ? p.progress + '/' + p.total : String(p.progress);
    this.dur.textContent = p.message ? p.message + ' · ' + count : count;
    this.node.dataset.progress = count;
  }

  /** @param {string} text */
  setResult(text) {
    this.resultLabel.textContent = 'Result';
    this.result.classList.remove('error-text');
    this.result.textContent = pretty(text) || '(empty)';
  }

  /**
   * setContent shows the result's binary parts (read with the user's token).
   * @param {import('./protocol.js').ContentRef[] | undefined} refs
   */
  setContent(refs) {
    fill(this.content, contentView(session, refs));
  }

  /** @param {string} text */
  setError(text) {
    this.resultLabel.textContent = 'Error';
    this.result.classList.add('error-text');
    this.result.textContent = text || 'the call failed';
  }

  renderMeta() {
    const rows = [['Status', this.status.replace(/_/g, ' ')], ['Duration', fmtDuration(this.durationMS)]];
    if (this.server) rows.push(['Server', this.server], ['Tool', this.tool]);
    fill(this.meta, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  /**
   * askApproval shows Approve and Deny; decide(approve) answers.
   * @param {(approve: boolean) => Promise<void>} decide
   */
  askApproval(decide) {
    this.setStatus(CallStatus.awaitingApproval);
    this.result.textContent = 'Not run: waiting for your approval.';
    const approve = el('button', { type: 'button', class: 'primary approve' }, 'Approve');
    const deny = el('button', { type: 'button', class: 'danger deny' }, 'Deny');
    const buttons = [approve, deny];
    const go = (/** @type {boolean} */ ok) => {
      buttons.forEach((b) => { b.disabled = true; });
      decide(ok).finally(() => buttons.forEach((b) => { b.disabled = false; }));
    };
    approve.addEventListener('click', () => go(true));
    deny.addEventListener('click', () => go(false));
    fill(this.approval, el('span', {}, 'Run ', el('strong', {}, this.title.textContent), '?'), approve, deny);
    this.approval.hidden = false;
  }
}

// AssistantBlock is one assistant answer: text, tool cards and notes, in
// the order they came, and at the end the cards to connect a server.
class AssistantBlock {
  /** @param {string} asked the user's message this answers ('' when unknown) */
  constructor(asked) {
    this.asked = asked;
    /** @type {Map<string, import('./connect.js').ConnectCard>} the cards to connect a server, by server */
    this.connects = new Map();
    this.body = el('div', { class: 'bubble' });
    /** @type {HTMLSpanElement} which agent answers, when agents are configured */
    this.agent = el('span', { class: 'agent-badge', hidden: true });
    this.node = el('div', { class: 'msg assistant' }, el('div', { class: 'role' }, 'Assistant', this.agent), this.body);
    /** @type {HTMLDivElement | null} the text being streamed */
    this.text = null;
    /** @type {HTMLDivElement | null} the note that the turn waits for an approval */
    this.waitNote = null;
    ui.thread.append(this.node);
  }

  startText() {
    this.text = el('div', { class: 'text' });
    this.body.append(this.text);
    return this.text;
  }

  /** @param {string} delta */
  appendText(delta) {
    const text = this.text || this.startText();
    text.textContent += delta;
  }

  endText() {
    this.text = null;
  }

  /**
   * @param {string} key
   * @param {string} title
   */
  addCard(key, title) {
    const card = new ToolCard(key, title, this);
    state.cards.set(key, card);
    this.text = null;
    this.body.append(card.node);
    return card;
  }

  /**
   * askConnect shows a card to connect a server a call needed (once per
   * server in an answer).
   * @param {ConnectionRequiredData} data
   */
  askConnect(data) {
    if (!data || !data.server || this.connects.has(data.server)) return;
    const card = connections.card(data.server, data.authorizationUrl || '', this.asked);
    this.connects.set(data.server, card);
    this.text = null;
    this.body.append(card.node);
  }

  /**
   * askInput shows a server's question to the user: a form from its
   * requested schema, or a link; the answer goes to the inputs route.
   * @param {InputRequest} input
   */
  askInput(input) {
    if (!input || !input.id || this.body.querySelector(`[data-input="${CSS.escape(input.id)}"]`)) return;
    const node = inputForm(input, (action, content) => answerInput(this, input, node, action, content));
    this.text = null;
    this.body.append(node);
  }

  // settle moves the cards to connect a server after what the answer said
  // about them: they are what the user does next.
  settle() {
    for (const card of this.connects.values()) this.body.append(card.node);
  }

  /**
   * @param {string} text
   * @param {'warn' | 'error'} kind
   */
  note(text, kind) {
    const n = el('div', { class: 'note ' + (kind || '') }, text);
    this.body.append(n);
    return n;
  }

  /**
   * setAgent shows the agent that answers from here on; from, at a
   * handoff, is the one that handed it the turn.
   * @param {string} agent
   * @param {string} [from]
   */
  setAgent(agent, from) {
    if (!agent) return;
    if (from && from !== agent) {
      this.text = null;
      this.body.append(el('div', { class: 'handoff-line', dataset: { from, to: agent } }, '⇄ ', el('strong', {}, from), ' handed off to ', el('strong', {}, agent)));
    }
    this.agent.textContent = agent;
    this.agent.hidden = false;
    this.node.dataset.agent = agent;
  }

  /** @param {boolean} on */
  setWorking(on) {
    this.node.classList.toggle('working', on);
  }
}

/** @param {string} content */
function addUserMessage(content) {
  ui.thread.append(el('div', { class: 'msg user' }, el('div', { class: 'role' }, 'You'), el('div', { class: 'bubble text' }, content)));
}

function nearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

/**
 * consume renders a streamed turn into block and returns its finish part.
 * @param {Response} res
 * @param {AssistantBlock} block
 */
async function consume(res, block) {
  /** @type {Extract<StreamPart, {type: typeof Part.finish}> | null} */
  let finish = null;
  /** @type {Extract<StreamPart, {type: typeof Part.error}> | null} the error part, told once the finish part has its code */
  let failure = null;
  block.setWorking(true);
  try {
    for await (const part of readStream(res)) {
      const stick = nearBottom();
      if (part.type === Part.error) failure = part;
      else if (part.type === Part.finish) finish = part;
      else handlePart(part, block);
      if (stick) scrollToBottom();
    }
  } catch (e) {
    if (isAbort(e)) block.note('Stopped.', 'warn');
    else block.note('The answer was cut off: ' + errorText(e), 'error');
  } finally {
    block.setWorking(false);
  }
  if (failure) {
    const code = finish && finish.messageMetadata ? finish.messageMetadata.errorCode : '';
    if (code === Code.turnCancelled) block.note('Stopped: ' + failure.errorText + '.', 'warn');
    else block.note(failure.errorText || 'The turn failed.', 'error');
  }
  return finish;
}

/**
 * isAbort reports whether e is the abort of a fetch (Stop dropped it).
 * @param {unknown} e
 */
function isAbort(e) {
  return e instanceof DOMException && e.name === 'AbortError';
}

/**
 * @param {StreamPart} part
 * @param {AssistantBlock} block
 */
function handlePart(part, block) {
  const card = 'toolCallId' in part ? state.cards.get(part.toolCallId) : undefined;
  switch (part.type) {
    case Part.start: {
      const meta = part.messageMetadata || {};
      if (meta.conversationId && state.current !== meta.conversationId) {
        state.current = meta.conversationId;
        setURL();
      }
      break;
    }
    case Part.textStart:
      block.startText();
      break;
    case Part.textDelta:
      block.appendText(part.delta);
      break;
    case Part.textEnd:
      block.endText();
      break;
    case Part.toolInput: {
      // The title is for display; the server and the tool come as fields
      // in the call's data part, next.
      const c = card || block.addCard(part.toolCallId, part.title || part.toolName);
      c.setInput(part.input);
      c.setStatus(CallStatus.running);
      c.result.textContent = 'Running…';
      break;
    }
    case Part.toolOutput: {
      if (!card) break;
      const out = part.output || {};
      card.setResult(out.result || (out.structured ? JSON.stringify(out.structured) : ''));
      card.setContent(out.content);
      card.setStatus(out.status || CallStatus.succeeded, out.duration_ms);
      break;
    }
    case Part.toolError:
      if (card) {
        card.setError(part.errorText);
        card.setStatus(CallStatus.failed);
      }
      break;
    case Part.toolDenied:
      if (card) {
        card.setError('You denied this call; it did not run.');
        card.setStatus(CallStatus.denied);
      }
      break;
    case Part.toolCall: {
      const c = state.cards.get(part.data && part.data.id);
      if (!c) break;
      c.setNames(part.data.server, part.data.tool);
      c.setStatus(part.data.status, part.data.duration_ms);
      if (part.data.progress) c.setProgress(part.data.progress);
      break;
    }
    case Part.toolApproval:
      if (card) card.askApproval((approve) => decide(card, approve));
      break;
    case Part.connectionRequired:
      block.askConnect(part.data);
      break;
    case Part.agent:
      block.setAgent(part.data.agent, part.data.from);
      if (ui.agent && state.agents.some((a) => a.name === part.data.agent)) ui.agent.value = part.data.agent; // the conversation's agent now
      break;
    case Part.elicitation:
      block.askInput(part.data);
      break;
    case Part.file:
      // A tool's image, for useChat apps: the tool's card shows it from
      // its output's content already.
      break;
    default:
      break;
  }
}

/**
 * post sends a JSON body and expects the UI message stream back; stop()
 * can abort it.
 * @param {string} path
 * @param {unknown} body
 */
function post(path, body) {
  const abort = new AbortController();
  state.abort = abort;
  return fetch(path, {
    signal: abort.signal,
    method: 'POST',
    headers: { Authorization: 'Bearer ' + session.token, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify(body),
  });
}

/**
 * run streams one request's answer into block, or a new assistant block.
 * @param {() => Promise<Response>} request
 * @param {AssistantBlock} [block]
 */
async function run(request, block) {
  setBusy(true);
  if (!block) block = new AssistantBlock('');
  scrollToBottom();
  try {
    let res;
    try {
      res = await request();
    } catch (e) {
      if (isAbort(e)) throw new ApiError(0, 'stopped', 'Stopped.');
      throw new ApiError(0, 'network_error', 'The server cannot be reached: ' + errorText(e));
    }
    if (!res.ok || !(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
      await decodeReply(res);
      throw new ApiError(res.status, 'unexpected_reply', 'The server did not stream an answer.');
    }
    const finish = await consume(res, block);
    block.settle();
    const status = finish && finish.messageMetadata ? finish.messageMetadata.status : '';
    if (status === TurnStatus.maxSteps) block.note('Stopped: the turn reached its step limit.', 'warn');
    if (status === TurnStatus.awaitingApproval) block.waitNote = block.note('Waiting for your approval.', 'warn');
    if (status === TurnStatus.awaitingInput) block.waitNote = block.note('Waiting for your answer.', 'warn');
  } catch (e) {
    block.note(errorText(e), 'error');
  } finally {
    setBusy(false);
    scrollToBottom();
    loadConversations();
  }
}

/**
 * send sends what the composer holds.
 * @param {string} content
 */
async function send(content) {
  if (state.busy || !content.trim()) return;
  ui.input.value = '';
  autosize();
  await ask(content);
}

/**
 * ask sends a message of the user's and streams the answer: from the
 * composer, or again from a connect card's Retry (the chat has no
 * regenerate of its own: the message is posted again, and shows again).
 * @param {string} content
 */
async function ask(content) {
  if (state.busy || !content.trim()) return;
  ui.empty.remove();
  addUserMessage(content);
  const body = { message: { content }, conversation_id: state.current || undefined, agent: state.agents.length ? ui.agent.value : undefined };
  await run(() => post(`/api/${encodeURIComponent(session.user)}/chat/stream`, body), new AssistantBlock(content));
}

/**
 * decide answers an approval request; the turn goes on in the card's
 * block.
 * @param {ToolCard} card
 * @param {boolean} approve
 */
async function decide(card, approve) {
  if (state.busy || !state.current) return;
  const path = `/api/${encodeURIComponent(session.user)}/conversations/${encodeURIComponent(state.current)}/tool-calls/${encodeURIComponent(card.ledgerID)}/approval`;
  card.approval.hidden = true;
  const block = card.block;
  if (block.waitNote) {
    block.waitNote.remove();
    block.waitNote = null;
  }
  await run(() => post(path, { approve }), block);
}

/**
 * answerInput posts the user's answer to a server's question; the reply is
 * the turn's next stop: its end (the conversation is drawn again), or the
 * next question. An answer the route refuses (content that does not fit)
 * keeps the form, with why.
 * @param {AssistantBlock} block
 * @param {InputRequest} input
 * @param {HTMLElement} node the form
 * @param {'accept' | 'decline' | 'cancel'} action
 * @param {Record<string, unknown>} [content]
 */
async function answerInput(block, input, node, action, content) {
  if (state.busy || !state.current) return;
  const path = `/api/${encodeURIComponent(session.user)}/conversations/${encodeURIComponent(state.current)}/inputs/${encodeURIComponent(input.id)}`;
  setBusy(true);
  node.querySelector('.elicit-error')?.remove();
  /** @type {{status: string, pending_inputs?: InputRequest[]}} */
  let r;
  try {
    r = await api(session, 'POST', path, action === 'accept' ? { action, content: content || {} } : { action });
  } catch (e) {
    setBusy(false);
    node.append(el('div', { class: 'note error elicit-error' }, errorText(e)));
    return;
  }
  setBusy(false);
  node.remove();
  if (block.waitNote) {
    block.waitNote.remove();
    block.waitNote = null;
  }
  if (r.status === TurnStatus.awaitingInput && r.pending_inputs && r.pending_inputs.length) {
    for (const next of r.pending_inputs) block.askInput(next);
    block.waitNote = block.note('Waiting for your answer.', 'warn');
    return;
  }
  await openConversation(state.current);
}

// stop cancels the running turn with the cancel route, so that the stream
// ends with what was done; when that cannot be (the turn has not started
// yet), it drops the request, which cancels the turn too.
async function stop() {
  try {
    if (!state.current) throw new Error('no conversation yet');
    await api(session, 'POST', `/api/${encodeURIComponent(session.user)}/conversations/${encodeURIComponent(state.current)}/cancel`);
  } catch {
    if (state.abort) state.abort.abort();
  }
}

/** @param {boolean} on */
function setBusy(on) {
  state.busy = on;
  ui.send.disabled = on;
  ui.stop.hidden = !on;
  ui.send.hidden = on;
  document.querySelectorAll('.approval button, .connect-card button.retry, .elicit button').forEach((b) => { /** @type {HTMLButtonElement} */ (b).disabled = on; });
}

function setURL() {
  const url = state.current ? '?c=' + encodeURIComponent(state.current) : location.pathname;
  history.replaceState(null, '', url);
  renderConversationList();
}

async function loadConversations() {
  try {
    /** @type {{conversations: Conversation[]}} */
    const r = await api(session, 'GET', `/api/${encodeURIComponent(session.user)}/conversations?limit=100`);
    state.conversations = r.conversations;
  } catch (e) {
    fill(ui.list, el('li', { class: 'muted small' }, errorText(e)));
    return;
  }
  renderConversationList();
}

function renderConversationList() {
  if (!state.conversations.length) {
    fill(ui.list, el('li', { class: 'muted small empty-list' }, 'No conversations yet.'));
    return;
  }
  fill(ui.list, ...state.conversations.map((c) => el('li', {},
    el('button', {
      type: 'button', class: 'conversation' + (c.id === state.current ? ' current' : ''), title: c.title,
      'aria-current': c.id === state.current ? 'true' : false,
      onclick: () => openConversation(c.id),
    }, el('span', { class: 'title' }, c.title || 'Untitled'), el('span', { class: 'when' }, fmtTime(c.updated_at))))));
}

function clearThread() {
  state.cards.clear();
  connections.forget();
  fill(ui.thread);
}

function newChat() {
  if (state.busy) return;
  state.current = null;
  setURL();
  clearThread();
  const def = state.agents.find((a) => a.default);
  if (ui.agent && def) ui.agent.value = def.name;
  ui.thread.append(ui.empty);
  ui.input.focus();
}

/** @param {string} id */
async function openConversation(id) {
  if (state.busy) return;
  state.current = id;
  setURL();
  clearThread();
  /** @type {{conversation: Conversation, messages: Message[], pending_inputs?: InputRequest[]}} */
  let r;
  try {
    r = await api(session, 'GET', `/api/${encodeURIComponent(session.user)}/conversations/${encodeURIComponent(id)}`);
  } catch (e) {
    state.current = null;
    setURL();
    ui.thread.append(el('div', { class: 'note error' }, errorText(e)));
    return;
  }
  const last = renderTranscript(r.messages);
  if (ui.agent && r.conversation.agent && state.agents.some((a) => a.name === r.conversation.agent)) ui.agent.value = r.conversation.agent;
  scrollToBottom();
  await applyLedger(id);
  if (r.pending_inputs && r.pending_inputs.length && state.current === id) {
    // Questions of servers still waiting for the user: under the last
    // answer, whose call asked them.
    const block = last || new AssistantBlock('');
    for (const input of r.pending_inputs) block.askInput(input);
    block.waitNote = block.note('Waiting for your answer.', 'warn');
    scrollToBottom();
  }
}

/**
 * applyLedger completes a reopened conversation's cards with the ledger:
 * status, duration, the error, and approval buttons for a call that still
 * waits for them.
 * @param {string} id the conversation's
 */
async function applyLedger(id) {
  /** @type {{tool_calls: ToolCallRow[]}} */
  let r;
  try {
    r = await api(session, 'GET', `/api/${encodeURIComponent(session.user)}/conversations/${encodeURIComponent(id)}/tool-calls`);
  } catch {
    return; // the cards keep what the transcript says
  }
  if (state.current !== id) return;
  for (const row of r.tool_calls) {
    const card = state.cards.get(row.call_id);
    if (!card) continue;
    card.ledgerID = row.id;
    state.cards.set(row.id, card);
    card.setNames(row.server, row.tool);
    card.setInput(row.arguments);
    if (row.status === CallStatus.awaitingApproval) {
      card.askApproval((approve) => decide(card, approve));
      continue;
    }
    if (row.status === CallStatus.succeeded) {
      card.setResult(row.result || (row.structured_result ? JSON.stringify(row.structured_result) : ''));
      card.setContent(row.content);
    }
    else if (row.status !== CallStatus.running) card.setError(row.result || row.error);
    card.setStatus(row.status, row.status === CallStatus.running ? undefined : row.duration_ms);
  }
}

/**
 * renderTranscript draws a stored conversation. The transcript has each
 * call's arguments and result; the live status and duration are the
 * ledger's, shown while a turn streams.
 * @param {Message[]} messages
 * @returns {AssistantBlock | null} the last answer's block
 */
function renderTranscript(messages) {
  /** @type {AssistantBlock | null} */
  let block = null;
  let asked = '';
  for (const m of messages) {
    if (m.role === Role.user) {
      addUserMessage(m.content);
      asked = m.content;
      block = null;
      continue;
    }
    if (!block) block = new AssistantBlock(asked);
    if (m.role === Role.tool) {
      // The ledger (applyLedger) tells the status; the transcript only
      // what the model read.
      const id = m.tool_call_id || '';
      const card = state.cards.get(id) || block.addCard(id, m.tool_name || 'tool');
      card.setResult(m.content);
      card.setStatus(SHOWN_DONE);
      continue;
    }
    if (m.type === MessageType.error) {
      block.note(m.content, 'error');
      continue;
    }
    if (m.type === MessageType.handoff) {
      if (m.handoff) block.setAgent(m.handoff.to, m.handoff.from);
      continue;
    }
    if (m.agent) block.setAgent(m.agent);
    if (m.content) {
      block.startText();
      block.appendText(m.content);
      block.endText();
    }
    // A call is named as the model saw it until the ledger (applyLedger)
    // names its server and tool.
    for (const tc of m.tool_calls || []) {
      const card = block.addCard(tc.id, tc.name);
      card.setInput(tc.arguments);
      card.setStatus(SHOWN_NO_RESULT);
      card.result.textContent = 'No result was stored for this call.';
    }
  }
  return block;
}

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = Math.min(ui.input.scrollHeight, 200) + 'px';
}

/** @param {HTMLElement} root */
function build(root) {
  ui.list = el('ul', { class: 'conversation-list', id: 'conversation-list' });
  ui.thread = el('div', { class: 'thread-inner', id: 'thread' });
  ui.scroller = el('div', { class: 'thread', id: 'messages' }, ui.thread);
  ui.input = el('textarea', { id: 'input', rows: 1, placeholder: 'Message Switchboard…  (Enter to send, Shift+Enter for a new line)', 'aria-label': 'Message' });
  ui.send = el('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send');
  ui.stop = el('button', { type: 'button', class: 'danger', id: 'stop', hidden: true, onclick: stop }, 'Stop');
  // The agent to answer as: shown once the user has agents (loadAgents).
  ui.agent = el('select', { id: 'agent', class: 'agent-select', 'aria-label': 'Agent', hidden: true });
  const composer = el('form', { class: 'composer', id: 'composer' }, ui.agent, ui.input, ui.send, ui.stop);
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    send(ui.input.value);
  });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(ui.input.value);
    }
  });
  ui.input.addEventListener('input', autosize);
  const suggestion = (/** @type {string} */ text) => el('button', { type: 'button', class: 'chip', onclick: () => { ui.input.value = text; ui.input.focus(); autosize(); } }, text);
  ui.empty = el('div', { class: 'empty-state' },
    el('h2', {}, 'What can I do for you?'),
    el('p', { class: 'muted' }, 'The assistant uses the tools of the connected MCP servers. Each call shows up as a card: open it to see its arguments, result and timing.'),
    el('div', { class: 'chips' }, suggestion('Add a task to buy milk'), suggestion('What is on my task list?')));
  fill(root, el('div', { class: 'chat-layout' },
    el('aside', { class: 'sidebar' },
      el('button', { type: 'button', class: 'primary new-chat', id: 'new-chat', onclick: newChat }, '+ New chat'),
      el('h2', { class: 'sidebar-title' }, 'Conversations'),
      ui.list,
      connections.panel),
    el('section', { class: 'conversation-pane' }, ui.scroller, el('div', { class: 'composer-wrap' }, composer))));
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
  connections = new Connections(session, {
    retry: (content) => {
      if (state.busy) return false;
      ask(content);
      return true;
    },
  });
  topbar(header, session, [{ href: '/', text: 'Chat', current: true }, { href: '/admin', text: 'Admin' }]);
  build(root);
  const id = new URLSearchParams(location.search).get('c');
  loadConversations();
  connections.load();
  loadAgents().then(() => {
    if (id) openConversation(id);
    else newChat();
  });
}

/**
 * loadAgents lists the agents the user may use into the composer's
 * select, the default chosen; without agents the select stays hidden.
 */
async function loadAgents() {
  try {
    /** @type {{agents: import('./protocol.js').AgentInfo[]}} */
    const r = await api(session, 'GET', `/api/${encodeURIComponent(session.user)}/agents`);
    state.agents = r.agents || [];
  } catch {
    state.agents = []; // the chat works without them
  }
  fill(ui.agent, ...state.agents.map((a) => el('option', { value: a.name, title: a.description, selected: a.default }, a.name)));
  ui.agent.hidden = state.agents.length === 0;
}

main();
