import { ChatKit, useChatKit } from '@openai/chatkit-react';

import type { Session } from './session';

// Where Switchboard is, as the page reaches it: the same origin (a dev
// server proxying /api to Switchboard), unless ?api=… says otherwise (then
// Switchboard must allow the page's origin).
const API_BASE = new URLSearchParams(location.search).get('api') ?? '';

// ChatKit checks the page's domain with OpenAI: on localhost any
// placeholder works; a public host needs the key of its domain from
// OpenAI's domain allow-list (?domainKey=…, or build it in).
const DOMAIN_KEY = new URLSearchParams(location.search).get('domainKey') ?? 'domain_pk_localhost';

export function App({ session }: { session: Session }) {
  const { control } = useChatKit({
    api: {
      url: `${API_BASE}/api/${encodeURIComponent(session.userId)}/chatkit`,
      domainKey: DOMAIN_KEY,
      // Every request carries the user's token, as every Switchboard
      // route requires.
      fetch: (input: RequestInfo | URL, init?: RequestInit) => {
        const headers = new Headers(init?.headers);
        headers.set('Authorization', `Bearer ${session.token}`);
        return fetch(input, { ...init, headers });
      },
    },
    startScreen: { greeting: `Hello, ${session.userId}. What can I do for you?` },
    composer: { placeholder: 'Ask, and Switchboard calls its tools' },
    widgets: {
      // Switchboard's approval and question cards post their actions to
      // the server (threads.custom_action) without the page. A server to
      // connect, and the link a server's question asks the user to open,
      // are the page's to open: in a new tab.
      async onAction(action) {
        const url = action.payload?.['url'];
        if ((action.type === 'connection.open' || action.type === 'input.open_url') && typeof url === 'string') {
          window.open(url, '_blank', 'noopener');
        }
      },
    },
    onError: ({ error }) => console.error('ChatKit:', error),
  });
  return <ChatKit control={control} className="chatkit" />;
}
