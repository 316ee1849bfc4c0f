// A stdio MCP server on the TypeScript SDK v2 (@modelcontextprotocol/server,
// MCP 2026-07-28) that refuses the legacy era: it answers initialize with
// the unsupported-protocol-version error naming its modern revisions, as
// the spec asks of a modern-only server. Tools: echo; grow (adds extra,
// which notifies clients subscribed with subscriptions/listen).
import { McpServer, fromJsonSchema } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';

const text = (s) => ({ content: [{ type: 'text', text: s }] });
const noArgs = fromJsonSchema({ type: 'object', properties: {} });

serveStdio(() => {
    const server = new McpServer({ name: 'tsmodern', version: '2.4.0-test' });
    server.registerTool('echo', {
        description: 'Returns its text.',
        inputSchema: fromJsonSchema({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }),
    }, async ({ text: s }) => text('echo: ' + s));
    server.registerTool('grow', { description: 'Adds the tool extra.', inputSchema: noArgs }, async () => {
        server.registerTool('extra', { description: 'Added by grow.', inputSchema: noArgs }, async () => text('extra'));
        return text('grown');
    });
    return server;
}, { legacy: 'reject' });
