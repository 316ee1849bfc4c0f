// @ts-check
// The binary parts of a tool result (images, audio, blobs), as the chat's
// tool cards and the admin console's call view show them. Their bytes are
// read with the bearer token (the API serves them only to their owner, or
// to admins at their own URL) and shown from a blob: URL: images inline,
// audio with a player, anything else as a download. A type a browser would
// run (HTML, SVG, scripts) is never given to a blob URL of this origin: it
// becomes application/octet-stream, a download.
import { el, errorText, fill } from './common.js';

/** @typedef {import('./common.js').Session} Session */
/** @typedef {import('./protocol.js').ContentRef} ContentRef */

// The media types shown as they are.
const IMAGES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp'];

/**
 * contentView returns the element that shows refs, filling in as their
 * bytes arrive; null when there are none.
 * @param {Session} session
 * @param {ContentRef[] | undefined} refs
 * @returns {HTMLElement | null}
 */
export function contentView(session, refs) {
  if (!refs || refs.length === 0) return null;
  return el('div', { class: 'tool-content' }, ...refs.map((ref) => contentItem(session, ref)));
}

/**
 * @param {Session} session
 * @param {ContentRef} ref
 */
function contentItem(session, ref) {
  const label = `${ref.kind} ${ref.index + 1} · ${ref.mime_type} · ${fmtBytes(ref.size)}` + (ref.uri ? ` · ${ref.uri}` : '');
  const item = el('figure', { class: 'content-item', dataset: { kind: ref.kind, index: String(ref.index) } },
    el('span', { class: 'muted' }, 'Loading ' + label + '…'));
  load(session, ref).then((url) => {
    const type = mediaType(ref.mime_type);
    let view;
    if (ref.kind === 'image' && IMAGES.includes(type)) view = el('img', { src: url, alt: label, class: 'content-image' });
    else if (type.startsWith('audio/')) view = el('audio', { src: url, controls: true, 'aria-label': label });
    else view = el('a', { href: url, download: fileName(ref, type), class: 'content-download' }, 'Download ' + label);
    fill(item, view, el('figcaption', { class: 'muted' }, label));
  }, (e) => {
    fill(item, el('span', { class: 'error-text' }, `Cannot show ${label}: ${errorText(e)}`));
  });
  return item;
}

/**
 * load reads ref's bytes with the bearer token and returns a blob: URL of
 * them, of ref's type when it is one shown as it is, else a download's.
 * @param {Session} session
 * @param {ContentRef} ref
 * @returns {Promise<string>}
 */
async function load(session, ref) {
  const res = await fetch(ref.url, { headers: { Authorization: 'Bearer ' + session.token } });
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new Error((body && body.error && body.error.message) || `HTTP ${res.status}`);
  }
  const type = mediaType(ref.mime_type);
  const safe = IMAGES.includes(type) || type.startsWith('audio/') || type === 'text/plain';
  const blob = new Blob([await res.arrayBuffer()], { type: safe ? type : 'application/octet-stream' });
  return URL.createObjectURL(blob);
}

/** @param {string} mime a media type with parameters, maybe */
function mediaType(mime) {
  return (mime || '').split(';')[0].trim().toLowerCase();
}

/**
 * @param {ContentRef} ref
 * @param {string} type
 */
function fileName(ref, type) {
  const fromURI = ref.uri ? ref.uri.split(/[/?#]/).filter(Boolean).pop() : '';
  if (fromURI) return fromURI;
  const ext = { 'image/png': '.png', 'image/jpeg': '.jpg', 'audio/wav': '.wav', 'audio/mpeg': '.mp3', 'application/pdf': '.pdf' }[type] || '.bin';
  return `content-${ref.index + 1}${ext}`;
}

/** @param {number} n bytes */
function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}
