// Drives Switchboard's chat stream with the AI SDK's own chat client: the
// AbstractChat that useChat wraps, over DefaultChatTransport({api, headers}),
// exactly as a React app would, minus React. Prints the chat's final state
// as JSON.
//
// Environment: API (the chat URL), TOKEN, CHAT_ID, PROMPTS (a JSON array).
import { AbstractChat, DefaultChatTransport } from 'ai';

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
const chat = new Chat({
  id: process.env.CHAT_ID,
  transport: new DefaultChatTransport({
    api: process.env.API,
    headers: { Authorization: `Bearer ${process.env.TOKEN}` },
  }),
  onError: (e) => errors.push(String(e && e.message ? e.message : e)),
});

for (const text of JSON.parse(process.env.PROMPTS)) {
  await chat.sendMessage({ text });
}
console.log(JSON.stringify({ status: chat.status, error: chat.error ? chat.error.message : null, errors, messages: chat.messages }));
