// @ts-check
// The end of a sign-in to an MCP server: tells the chat that opened it
// (over a BroadcastChannel: the pages are same-origin, but the sign-in's
// detour through the authorization server leaves no window.opener) and
// closes the window.
(() => {
  const el = document.getElementById('callback-message');
  if (!el) return;
  const ok = el.dataset.ok === 'true';
  const server = el.dataset.server || '';
  try {
    const channel = new BroadcastChannel('switchboard-connections');
    channel.postMessage({ type: 'connection', ok, server });
    channel.close();
  } catch {
    // No BroadcastChannel: the chat finds out when the user retries.
  }
  if (ok) setTimeout(() => window.close(), 1500);
})();
