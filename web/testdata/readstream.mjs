// Feeds protocol.js's readStream UI message streams cut into chunks every
// way: whole, in two at each byte, a byte at a time. Prints, per case, the
// parts it read whole and every cut that read otherwise.
//
// Environment: PROTOCOL (the path of protocol.js, copied as an .mjs file),
// CASES (a JSON object: case name -> the stream's text).
import { pathToFileURL } from 'node:url';

const { readStream } = await import(pathToFileURL(process.env.PROTOCOL).href);

async function read(chunks) {
  const body = new ReadableStream({
    start(c) {
      for (const b of chunks) c.enqueue(b);
      c.close();
    },
  });
  const parts = [];
  try {
    for await (const p of readStream(new Response(body))) parts.push(p);
  } catch (e) {
    parts.push({ thrown: String(e) });
  }
  return parts;
}

const out = {};
for (const [name, text] of Object.entries(JSON.parse(process.env.CASES))) {
  const bytes = new TextEncoder().encode(text);
  const whole = await read([bytes]);
  const want = JSON.stringify(whole);
  const differ = [];
  for (let i = 1; i < bytes.length; i++) {
    const got = JSON.stringify(await read([bytes.slice(0, i), bytes.slice(i)]));
    if (got !== want) differ.push(`cut at byte ${i}: ${got}`);
  }
  const single = JSON.stringify(await read([...bytes].map((b) => Uint8Array.of(b))));
  if (single !== want) differ.push(`a byte a chunk: ${single}`);
  out[name] = { parts: whole, differ };
}
console.log(JSON.stringify(out));
