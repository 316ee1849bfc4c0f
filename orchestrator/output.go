package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
)

// An agent with an output schema answers with a JSON object of that schema:
// the model is asked for it (response_format json_schema, strict), and the
// answer is parsed and validated before it is stored; one that does not
// validate fails the turn with the reason.

// agentSchemaURL names an agent's output schema while it compiles; a $ref
// to anything else is refused (see noLoader).
const agentSchemaURL = "switchboard:agent-output-schema.json"

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: only references within the schema are followed", url)
}

// CompileOutputSchema compiles an agent's output schema (JSON Schema
// 2020-12 unless it says otherwise), which must describe an object, as
// OpenAI's structured outputs require. It returns nil, nil for none.
func CompileOutputSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var top struct {
		Type any `json:"type"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("output_schema is not a JSON object: %w", err)
	}
	if top.Type != "object" {
		return nil, fmt.Errorf("output_schema must be of type object (got %v)", top.Type)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("output_schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(agentSchemaURL, doc); err != nil {
		return nil, fmt.Errorf("output_schema cannot be read: %w", err)
	}
	s, err := c.Compile(agentSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("output_schema is not a valid JSON Schema: %s", firstLines(err.Error(), 300))
	}
	return s, nil
}

// structured parses and validates an answer against schema: the answer's
// object, compacted, or an error (ErrUpstream, invalid_structured_output)
// that says why it does not do.
func structured(schema *jsonschema.Schema, agent, answer string) (json.RawMessage, error) {
	fail := func(why string) error {
		return switchboard.Errorf(switchboard.ErrUpstream, "invalid_structured_output",
			"the answer of agent %s does not match its output schema: %s", agent, why)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(answer))
	if err != nil {
		return nil, fail("it is not JSON")
	}
	if err := schema.Validate(v); err != nil {
		lines := strings.Split(err.Error(), "\n")
		if len(lines) > 1 {
			lines = lines[1:]
		}
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "- ")
		}
		return nil, fail(firstLines(strings.Join(lines, "; "), 500))
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(answer)); err != nil {
		return nil, fail("it is not JSON")
	}
	return b.Bytes(), nil
}

func firstLines(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// answer ends the turn with the model's text answer: parsed and checked
// against the agent's output schema, if it has one, and by its output
// guardrails, before it is stored.
func (t *turn) answer(ctx context.Context, step int, reply switchboard.ModelReply) (*Result, error) {
	if t.ev != nil {
		t.ev.StepFinished(step)
	}
	msg := t.assistantText(reply.Content)
	if schema := t.o.agents.schemas[t.agent]; schema != nil {
		obj, err := structured(schema, t.agent.Name, reply.Content)
		if err != nil {
			return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
		}
		msg.Structured = obj
	}
	if len(t.agent.OutputGuardrails) > 0 {
		v := t.runGuardrails(ctx, "output", step, t.agent.OutputGuardrails, reply.Content)
		t.record(v)
		if v.tripped != nil {
			return t.tripped(ctx, "output", v.tripped)
		}
	}
	return t.end(ctx, switchboard.TurnCompleted, msg, nil)
}
