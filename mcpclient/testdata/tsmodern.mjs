// An MCP server on the TypeScript SDK v2 (@modelcontextprotocol/server,
// MCP 2026-07-28) that refuses the legacy era: over stdio (the default) it
// answers initialize with the unsupported-protocol-version error naming
// its modern revisions, as the spec asks of a modern-only server; with
// --http it serves createMcpHandler at http://127.0.0.1:<port>/mcp (the port
// printed on stdout), legacy requests rejected the same way. Tools: echo;
// grow (adds extra, which notifies clients subscribed with
// subscriptions/listen).
import http from 'node:http';
import { McpServer, createMcpHandler, fromJsonSchema } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';

const text = (s) => ({ content: [{ type: 'text', text: s }] });
const noArgs = fromJsonSchema({ type: 'object', properties: {} });

// Over HTTP each request gets a server of its own: what grow did is kept
// here, and its change published on the handler's bus.
let grown = false;
let notify = () => {};

function factory() {
    const server = new McpServer({ name: 'tsmodern', version: '2.4.0-test' });
    server.registerTool('echo', {
        description: 'Returns its text.',
        inputSchema: fromJsonSchema({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }),
    }, async ({ text: s }) => text('echo: ' + s));
    const addExtra = () => server.registerTool('extra', { description: 'Added by grow.', inputSchema: noArgs }, async () => text('extra'));
    if (grown) addExtra();
    server.registerTool('grow', { description: 'Adds the tool extra.', inputSchema: noArgs }, async () => {
        if (!grown) {
            grown = true;
            addExtra();
            notify();
        }
        return text('grown');
    });
    return server;
}

if (!process.argv.includes('--http')) {
    serveStdio(factory, { legacy: 'reject' });
} else {
    const handler = createMcpHandler(factory, { legacy: 'reject' });
    notify = () => handler.notify.toolsChanged();
    const server = http.createServer(async (req, res) => {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        const body = chunks.length ? Buffer.concat(chunks) : undefined;
        const ac = new AbortController();
        res.on('close', () => ac.abort());
        const request = new Request(`http://${req.headers.host}${req.url}`, {
            method: req.method, headers: req.headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body, signal: ac.signal,
        });
        const response = await handler.fetch(request);
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (!response.body) return res.end();
        try {
            for await (const chunk of response.body) res.write(chunk);
        } catch {
            // the client went away
        }
        res.end();
    });
    server.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${server.address().port}/mcp`));
    process.on('SIGTERM', () => process.exit(0));
}
