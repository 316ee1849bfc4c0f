import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { App } from './App';
import { currentSession } from './session';

const root = document.getElementById('root');
if (!root) throw new Error('no #root element');
const session = currentSession();
createRoot(root).render(
  <StrictMode>
    {session ? (
      <App session={session} />
    ) : (
      <p>
        Open this page with <code>#token=…</code>: the token <code>go run ./cmd/switchboard</code> prints in dev mode,
        or one from <code>switchboard token --user NAME</code>.
      </p>
    )}
  </StrictMode>,
);
