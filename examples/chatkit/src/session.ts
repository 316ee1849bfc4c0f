// The signed-in user, as Switchboard's own chat page finds it: a bearer
// token from the URL fragment (#token=…, as dev mode's login URL carries
// it; browsers never send a fragment to a server), kept in this tab's
// sessionStorage, the fragment removed from the address bar. The user id is
// the token's sub claim, else the seed's user_id claim.

const TOKEN_KEY = 'switchboard.chatkit.token';

export type Session = { token: string; userId: string };

export function currentSession(): Session | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromURL = params.get('token');
  if (fromURL) {
    sessionStorage.setItem(TOKEN_KEY, fromURL);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const userId = userOf(token);
  if (!userId) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return { token, userId };
}

// userOf reads the user id from a JWT's claims (not verifying it: the
// server does).
function userOf(token: string): string | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims: unknown = JSON.parse(json);
    if (typeof claims !== 'object' || claims === null) return null;
    const { sub, user_id } = claims as { sub?: unknown; user_id?: unknown };
    if (typeof sub === 'string' && sub !== '') return sub;
    if (typeof user_id === 'string' && user_id !== '') return user_id;
  } catch {
    return null;
  }
  return null;
}
