// Drives Switchboard's chat stream with the AI SDK's own chat client: the
// AbstractChat that useChat wraps, over DefaultChatTransport({api, headers}),
// exactly as a React app would, minus React. Prints the chat's final state
// as JSON.
//
// Environment: API (the chat URL), TOKEN, CHAT_ID, PROMPTS (a JSON array);
// BODY (a JSON object), fields the transport adds to every body;
// APPROVE (yes or no), to answer every approval request as a user would
// with addToolApprovalResponse, the chat sending the answer by itself;
// REGENERATE (a JSON array of message indexes, or null for the last
// answer), to call the chat's regenerate({messageId}) after the prompts, as a
// "regenerate" button would; SIGN_IN (yes), to open, after each prompt, the
// authorization URL of each data-connection-required part of the answer as
// a browser would (following the redirects to the callback page), and
// report each sign-in with the part as the chat holds it.
import { AbstractChat, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';

// ArrayState is the plain-array ChatState that React's state replaces.
class ArrayState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (m) => { this.messages = this.messages.concat(m); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (i, m) => { this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]; };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new ArrayState() });
  }
}

const errors = [];
const signIns = [];
const chat = new Chat({
  id: process.env.CHAT_ID,
  transport: new DefaultChatTransport({
    api: process.env.API,
    headers: { Authorization: `Bearer ${process.env.TOKEN}` },
    body: JSON.parse(process.env.BODY || '{}'), // more of the body: {agent} chooses one
  }),
  onError: (e) => errors.push(String(e && e.message ? e.message : e)),
  sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
});

const settled = async () => {
  while (chat.status === 'submitted' || chat.status === 'streaming') {
    await new Promise((r) => setTimeout(r, 10));
  }
};

for (const text of JSON.parse(process.env.PROMPTS)) {
  await chat.sendMessage({ text });
  const approve = process.env.APPROVE;
  for (let round = 0; approve && round < 5; round++) {
    const last = chat.messages[chat.messages.length - 1];
    const asked = last.parts.filter((p) => p.state === 'approval-requested');
    if (asked.length === 0) break;
    for (const p of asked) {
      await chat.addToolApprovalResponse({ id: p.approval.id, approved: approve === 'yes', reason: 'from the test' });
    }
    await new Promise((r) => setTimeout(r, 20)); // the chat sends on its own, a tick later
    await settled();
  }
  const last = chat.messages[chat.messages.length - 1];
  for (const part of process.env.SIGN_IN === 'yes' ? last.parts : []) {
    if (part.type !== 'data-connection-required' || !part.data.authorizationUrl) continue;
    const res = await fetch(part.data.authorizationUrl);
    signIns.push({ part: structuredClone(part), status: res.status, url: res.url, page: await res.text() });
  }
}
// EDIT: [[index, text], ...], to edit the user message at index as
// sendMessage({text, messageId}) does.
for (const [index, text] of JSON.parse(process.env.EDIT || '[]')) {
  await chat.sendMessage({ text, messageId: chat.messages[index].id });
  await settled();
}
for (const index of JSON.parse(process.env.REGENERATE || '[]')) {
  await chat.regenerate(index === null ? {} : { messageId: chat.messages[index].id });
  await settled();
}
console.log(JSON.stringify({ status: chat.status, error: chat.error ? chat.error.message : null, errors, signIns, messages: chat.messages }));
