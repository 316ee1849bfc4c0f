package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard/mcpclient"
)

// What servers ask during a call (elicitation, sampling) goes to the
// Asker the call's context carries; see mcpclient's asks.go. The names
// are mcpclient's, here for the orchestrator, which imports this package
// and not mcpclient.
type (
	Asker           = mcpclient.Asker
	Elicitation     = mcpclient.Elicitation
	ElicitResult    = mcpclient.ElicitResult
	SamplingRequest = mcpclient.SamplingRequest
	RequestError    = mcpclient.RequestError
	Resume          = mcpclient.Resume
)

// WithAsker returns ctx carrying a, for the calls run with it.
func WithAsker(ctx context.Context, a Asker) context.Context { return mcpclient.WithAsker(ctx, a) }

// WithResume returns ctx making the call run with it go on from r, where
// a modern server asked for input (see mcpclient.WithResume).
func WithResume(ctx context.Context, r Resume) context.Context { return mcpclient.WithResume(ctx, r) }

// CheckInput reports how content, a person's answer to a form
// elicitation, breaks the form's requested schema, or nil if it fits: an
// object, formats (email, uri, date, date-time) asserted. The error says
// where and how, for the person.
func CheckInput(schema, content json.RawMessage) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("the requested schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	c.AssertFormat()
	if err := c.AddResource(inputSchemaURL, doc); err != nil {
		return fmt.Errorf("the requested schema cannot be read: %w", err)
	}
	sch, err := c.Compile(inputSchemaURL)
	if err != nil {
		return fmt.Errorf("the requested schema is not a valid JSON Schema: %s", oneLine(err.Error(), 300))
	}
	if t := bytes.TrimSpace(content); len(t) == 0 || t[0] != '{' {
		return errors.New("the content must be a JSON object")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(content))
	if err != nil {
		return fmt.Errorf("the content is not JSON: %w", err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("the content does not fit the requested schema: %s", validationMessage(err))
	}
	return nil
}

// inputSchemaURL names a requested schema in the compiler.
const inputSchemaURL = "urn:switchboard:requested-schema"
