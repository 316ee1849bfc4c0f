// @ts-check
// What the web UI knows of Switchboard's wire protocol, in one place: the
// part types of the UI message stream (the Vercel AI SDK's, which api/stream.go
// writes), the statuses of tool calls and turns, the roles and types of a
// transcript's messages, the error codes the pages react to, and the one
// reader of the stream. The pages import these names;
// none of them spells a status, a part type or a code of its own.
//
// The object between the protocol:begin and protocol:end comments is JSON
// (double-quoted keys and strings, no trailing comma, no comment inside):
// TestProtocolJS (api/protocol_test.go) parses it and holds it equal to the
// Go constants. Each key is a Go constant's name without its prefix, its
// first letter lower-cased; part and the statuses list every constant of
// their Go type, code the codes (Code...) the pages react to:
//
//   part        partType (api/stream.go)          partTextDelta     -> part.textDelta
//   callStatus  switchboard.ToolCallStatus (Call…) CallTimedOut      -> callStatus.timedOut
//   turnStatus  switchboard.TurnStatus (Turn…)     TurnMaxSteps      -> turnStatus.maxSteps
//   role        switchboard.Role (Role…)           RoleAssistant     -> role.assistant
//   messageType switchboard.MessageType (Message…) MessageToolCall   -> messageType.toolCall
//   code        switchboard.Code…                  CodeTurnCancelled -> code.turnCancelled

const wire = /** @type {const} */ (/* protocol:begin */ {
  "part": {
    "start": "start",
    "startStep": "start-step",
    "textStart": "text-start",
    "textDelta": "text-delta",
    "textEnd": "text-end",
    "toolInput": "tool-input-available",
    "toolOutput": "tool-output-available",
    "toolError": "tool-output-error",
    "toolDenied": "tool-output-denied",
    "toolApproval": "tool-approval-request",
    "toolCall": "data-tool-call",
    "connectionRequired": "data-connection-required",
    "agent": "data-agent",
    "elicitation": "data-elicitation",
    "error": "error",
    "finishStep": "finish-step",
    "finish": "finish",
    "file": "file"
  },
  "callStatus": {
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "timedOut": "timed_out",
    "cancelled": "cancelled",
    "denied": "denied",
    "awaitingApproval": "awaiting_approval"
  },
  "turnStatus": {
    "running": "running",
    "completed": "completed",
    "failed": "failed",
    "maxSteps": "max_steps",
    "cancelled": "cancelled",
    "awaitingApproval": "awaiting_approval",
    "maxHandoffs": "max_handoffs",
    "guardrailTripped": "guardrail_tripped",
    "awaitingInput": "awaiting_input"
  },
  "role": {
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "system": "system"
  },
  "messageType": {
    "text": "text",
    "toolCall": "tool_call",
    "toolResult": "tool_result",
    "error": "error",
    "handoff": "handoff"
  },
  "code": {
    "turnCancelled": "turn_cancelled",
    "adminOnly": "admin_only",
    "connectionRequired": "connection_required"
  }
} /* protocol:end */);

/** The types of the parts of the UI message stream. */
export const Part = Object.freeze(wire.part);
/** The statuses of a tool call in the ledger. */
export const CallStatus = Object.freeze(wire.callStatus);
/** The statuses of a turn. */
export const TurnStatus = Object.freeze(wire.turnStatus);
/** Who wrote a message of a transcript. */
export const Role = Object.freeze(wire.role);
/** The kinds of a transcript's messages. */
export const MessageType = Object.freeze(wire.messageType);
/** The error codes the pages react to (others they show as they come). */
export const Code = Object.freeze(wire.code);

/** @typedef {typeof CallStatus[keyof typeof CallStatus]} CallStatusValue */
/** @typedef {typeof TurnStatus[keyof typeof TurnStatus]} TurnStatusValue */

/**
 * The metadata of a streamed answer: the start part names the conversation
 * and the turn; the finish part adds the turn's status and, when an error
 * ended it, the error's code.
 * @typedef {object} MessageMetadata
 * @property {string} conversationId
 * @property {string} turnId
 * @property {TurnStatusValue} [status]
 * @property {string} [errorCode]
 * @property {string} [agent] the agent that answered (finish), when agents are configured
 */

/**
 * What a finished call's tool-output-available part carries.
 * @typedef {object} ToolOutput
 * @property {string} result
 * @property {unknown} [structured]
 * @property {CallStatusValue} status
 * @property {number} duration_ms
 * @property {string} server
 * @property {string} tool
 * @property {boolean} [truncated]
 * @property {ContentRef[]} [content] the result's binary parts
 */

/**
 * A binary part of a call's result (an image, audio, a blob), as tool
 * outputs and ledger rows list it: its bytes are at url, read with the
 * bearer token (never shown as active content).
 * @typedef {object} ContentRef
 * @property {number} index
 * @property {'image' | 'audio' | 'resource'} kind
 * @property {string} mime_type
 * @property {number} size
 * @property {string} sha256
 * @property {string} [uri] a resource's
 * @property {string} url
 */

/**
 * A server's question to the user (MCP elicitation), as the
 * data-elicitation part's data and the JSON reply's pending_inputs list it.
 * Answer it with POST /api/{user}/conversations/{conversation}/inputs/{id}
 * and {action: 'accept' | 'decline' | 'cancel', content}: a form's content
 * must fit requested_schema; a url input is accepted once the link is open.
 * @typedef {object} InputRequest
 * @property {string} id
 * @property {string} tool_call_id the ledger id of the call that asked
 * @property {string} server
 * @property {'form' | 'url'} mode
 * @property {string} message
 * @property {object} [requested_schema] a flat object schema: strings (with format email, uri, date, date-time), numbers, integers, booleans, enums (enum, oneOf with titles, enumNames), arrays of enums; defaults
 * @property {string} [url] the link to open (url mode)
 * @property {string} status
 * @property {string} created_at
 */

/**
 * A call's data-tool-call part: sent when the call starts (or waits for
 * approval) with its server and tool, and again when it ends, with its
 * duration.
 * @typedef {object} ToolCallData
 * @property {string} id the ledger id, as the tool parts' toolCallId
 * @property {string} server
 * @property {string} tool
 * @property {CallStatusValue} status
 * @property {number} [duration_ms] set once the call has ended
 * @property {string} [error]
 * @property {ToolProgress} [progress] the server's last report of a running call
 */

/**
 * An MCP server's progress report of a running call (notifications/progress).
 * @typedef {object} ToolProgress
 * @property {number} progress
 * @property {number} [total] absent when the server does not know it
 * @property {string} [message]
 */

/**
 * A data-connection-required part's data: a call of server did not run
 * because the user has not connected it (or its grant stopped working).
 * An OAuth server comes with the URL to sign in at; a user_secret server
 * without one: it takes its secrets at POST /api/{user}/connections/{server}.
 * @typedef {object} ConnectionRequiredData
 * @property {string} server
 * @property {string} [authorizationUrl]
 */

/**
 * A data-agent part's data: the agent that answers from here on; from, at
 * a handoff, the agent that handed it the turn. One comes as a turn starts
 * (its first agent) and one at each handoff, when agents are configured.
 * @typedef {object} AgentData
 * @property {string} agent
 * @property {string} [from]
 */

/**
 * One part of the UI message stream, as api/stream.go writes it.
 * @typedef {{type: typeof Part.start, messageId: string, messageMetadata: MessageMetadata}
 *   | {type: typeof Part.startStep | typeof Part.finishStep}
 *   | {type: typeof Part.textStart | typeof Part.textEnd, id: string}
 *   | {type: typeof Part.textDelta, id: string, delta: string}
 *   | {type: typeof Part.toolInput, toolCallId: string, toolName: string, input: unknown, dynamic: boolean, title?: string}
 *   | {type: typeof Part.toolOutput, toolCallId: string, output: ToolOutput, dynamic: boolean}
 *   | {type: typeof Part.toolError, toolCallId: string, errorText: string, dynamic: boolean}
 *   | {type: typeof Part.toolDenied, toolCallId: string}
 *   | {type: typeof Part.toolApproval, approvalId: string, toolCallId: string}
 *   | {type: typeof Part.toolCall, id: string, data: ToolCallData}
 *   | {type: typeof Part.connectionRequired, id: string, data: ConnectionRequiredData}
 *   | {type: typeof Part.agent, id: string, data: AgentData}
 *   | {type: typeof Part.elicitation, id: string, data: InputRequest}
 *   | {type: typeof Part.error, errorText: string}
 *   | {type: typeof Part.file, url: string, mediaType: string}
 *   | {type: typeof Part.finish, finishReason?: string, messageMetadata: MessageMetadata}} StreamPart
 */

// The JSON the pages read from the API, as api's DTOs write it (for tsc;
// the shapes are not checked against Go, the constants above are).

/**
 * A conversation (GET /api/{user}/conversations).
 * @typedef {object} Conversation
 * @property {string} id
 * @property {string} user_id
 * @property {string} title
 * @property {string} status
 * @property {string} created_at
 * @property {string} updated_at
 * @property {string} [agent] its current agent, when agents are configured
 */

/**
 * An agent the user may use (GET /api/{user}/agents).
 * @typedef {object} AgentInfo
 * @property {string} name
 * @property {string} description
 * @property {boolean} default
 */

/**
 * A server that acts as each user, as the user's connections list it (GET
 * /api/{user}/connections), or a credential as admins list them (GET
 * /api/admin/connections, with user_id; connected always). Never a token
 * or a secret's value.
 * @typedef {object} UserConnection
 * @property {string} server
 * @property {string} type
 * @property {boolean} connected
 * @property {string[]} [scopes] of an OAuth grant
 * @property {string} [expires_at] of an OAuth grant's access token (refreshed unseen)
 * @property {string} [created_at]
 * @property {string} [last_used_at]
 * @property {Record<string, string>} [secrets] of a user_secret server: each value's name and what it is for
 * @property {string} [user_id] in admins' listing
 */

/**
 * A call as the model asked for it, in a tool_call message.
 * @typedef {object} RequestedCall
 * @property {string} id the model's call id
 * @property {string} name the tool's exposed name
 * @property {string} arguments JSON text
 */

/**
 * A message of a transcript (GET /api/{user}/conversations/{id}).
 * @typedef {object} Message
 * @property {string} id
 * @property {string} content
 * @property {typeof Role[keyof typeof Role]} role
 * @property {typeof MessageType[keyof typeof MessageType]} type
 * @property {string} timestamp
 * @property {RequestedCall[]} [tool_calls] of a tool_call message
 * @property {string} [tool_call_id] of a tool_result message: the model's call id
 * @property {string} [tool_name] of a tool_result message
 * @property {string} [turn_id] absent for a message of no turn
 * @property {string} [superseded_by] in an admin's view: the turn that answered again
 * @property {'positive' | 'negative'} [feedback] the user's rating of the message (ChatKit's items.feedback)
 * @property {string} [agent] the agent that wrote an assistant message, when agents are configured
 * @property {{from: string, to: string}} [handoff] of a handoff message
 * @property {unknown} [structured] the parsed answer of an agent with an output schema
 */

/**
 * A ledger row as a user reads it (GET /api/{user}/conversations/{id}/tool-calls).
 * @typedef {object} ToolCallRow
 * @property {string} id the ledger id
 * @property {string} call_id the model's call id, as the transcript has it
 * @property {string} server
 * @property {string} tool
 * @property {string} exposed_name
 * @property {unknown} arguments
 * @property {string} result
 * @property {unknown} [structured_result]
 * @property {CallStatusValue} status
 * @property {string} error
 * @property {number} duration_ms
 * @property {ContentRef[]} [content] the result's binary parts
 */

/**
 * A ledger row as admins list it (GET /api/admin/tool-calls), without its
 * result; the detail (GET /api/admin/tool-calls/{id}) adds it.
 * @typedef {object} AdminToolCall
 * @property {string} id
 * @property {string} call_id
 * @property {string} user_id
 * @property {string} conversation_id
 * @property {string} turn_id
 * @property {number} step
 * @property {string} server
 * @property {string} tool
 * @property {string} exposed_name
 * @property {unknown} arguments
 * @property {CallStatusValue} status
 * @property {string} error_class
 * @property {string} error
 * @property {number} duration_ms
 * @property {number} result_size
 * @property {boolean} truncated
 * @property {string} started_at
 * @property {string | null} finished_at null while the call runs or awaits approval
 * @property {string} [task_id] the MCP task the call ran as, if it did
 * @property {string} [task_status] that task's last status
 * @property {ContentRef[]} [content] the result's binary parts, at admin URLs
 * @property {string} [agent] the agent whose step asked for the call, when agents are configured
 * @property {string} [parent_id] the call of an agent used as a tool that this call ran inside
 */

/**
 * @typedef {AdminToolCall & {result: string, structured_result: unknown}} AdminToolCallDetail
 */

/**
 * The calls of one tool or server (GET /api/admin/tool-calls/stats).
 * @typedef {object} ToolCallStats
 * @property {string} server
 * @property {string} [tool] when grouped by tool
 * @property {number} count
 * @property {number} errors
 * @property {number} error_rate
 * @property {number} p50_ms
 * @property {number} p95_ms
 */

/**
 * The turns of one agent (GET /api/admin/agents/stats): those that ended as
 * it, with their handoffs, tokens and the latency of those that ended.
 * @typedef {object} AgentStats
 * @property {string} agent empty for turns run without agents
 * @property {number} turns
 * @property {number} handoffs
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {number} p50_ms
 * @property {number} p95_ms
 */

/**
 * An icon an MCP server declared for itself or a tool. Untrusted: see
 * admin.js's iconSrc before showing one.
 * @typedef {object} Icon
 * @property {string} src
 * @property {string} [mime_type]
 * @property {string[]} [sizes]
 * @property {string} [theme] light or dark
 */

/**
 * An MCP server's health (GET /api/admin/servers).
 * @typedef {object} ServerStatus
 * @property {string} name
 * @property {string} transport
 * @property {string} state
 * @property {boolean} required
 * @property {string[]} tools
 * @property {{tool: string, reason: string}[]} quarantined
 * @property {number} restarts
 * @property {string} [last_error]
 * @property {string} [last_error_at]
 * @property {string} [connected_at]
 * @property {string[]} stderr_tail
 * @property {Icon[]} [icons] the server's own
 * @property {Record<string, Icon[]>} [tool_icons] its tools', by exposed name
 * @property {ServerProtocol} [protocol] absent until it first connected
 */

/**
 * What a server's connection speaks and what the server said of itself.
 * @typedef {object} ServerProtocol
 * @property {string} era legacy (initialize, MCP 2025-11-25 and earlier) or modern (MCP 2026-07-28)
 * @property {string} version the protocol version in use
 * @property {string} server_name
 * @property {string} server_version
 * @property {Record<string, unknown>} capabilities as the server declared them
 */

/**
 * A turn as admins inspect it (GET /api/admin/conversations/{id}).
 * @typedef {object} AdminTurn
 * @property {string} id
 * @property {TurnStatusValue} status
 * @property {number} steps
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {string} error
 * @property {string} started_at
 * @property {string | null} finished_at
 * @property {number | null} duration_ms wall time, null while the turn runs or waits
 * @property {{llm_ms: number, tools_ms: number, store_ms: number, overhead_ms: number}} timing
 * @property {AdminToolCall[]} tool_calls
 * @property {string} [agent] the agent the turn ended as
 * @property {number} [handoffs]
 */

/**
 * readStream yields the parts of a UI message stream, the body of res:
 * server-sent events whose data is one JSON part each, until `[DONE]` or
 * the body's end. Lines end in LF, CRLF or CR (also split across chunks);
 * an event's data lines are joined with LF; other fields, comments and an
 * unfinished last event are ignored, as EventSource does.
 * @param {Response} res
 * @returns {AsyncGenerator<StreamPart, void, void>}
 */
export async function* readStream(res) {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const eol = /\r\n|\r|\n/g;
  let buf = '';
  /** @type {string[]} */
  let data = [];
  for (let ended = false; !ended;) {
    const { value, done } = await reader.read();
    if (done) {
      // Only a CR held back below can still end a line.
      if (!buf.endsWith('\r')) return;
      ended = true;
      buf += '\n';
    } else {
      buf += value;
    }
    let start = 0;
    for (;;) {
      eol.lastIndex = start;
      const found = eol.exec(buf);
      // A CR at the end may be the first half of a CRLF: wait for more.
      if (!found || (found[0] === '\r' && found.index === buf.length - 1)) break;
      const line = buf.slice(start, found.index);
      start = found.index + found[0].length;
      if (line === '') {
        const event = data.join('\n');
        data = [];
        if (event === '') continue;
        if (event === '[DONE]') return;
        yield /** @type {StreamPart} */ (JSON.parse(event));
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
    buf = buf.slice(start);
  }
}
