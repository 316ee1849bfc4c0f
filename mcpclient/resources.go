package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-dev/switchboard"
)

// HasResources reports whether the server declared the resources
// capability when the Conn connected (a Conn that took up another's
// session does not know, and reports false).
func (c *Conn) HasResources() bool { return c.resources }

// ReadResource reads the resource of uri with resources/read, within
// Config.Timeout, less if ctx ends sooner (the server is then told that
// the request is cancelled). The Result holds its contents as a tool
// result holds embedded resources: text, and blobs of a text mime type,
// in Text; other blobs in Parts, named in Text.
//
// The error wraps switchboard.ErrInvalid if uri is empty or the server
// rejects the request (an unknown resource); switchboard.ErrUnavailable
// if the connection is broken or closed; switchboard.ErrUpstreamTimeout
// if the timeout passed; ctx's error if ctx ended first.
func (c *Conn) ReadResource(ctx context.Context, uri string) (*Result, error) {
	if strings.TrimSpace(uri) == "" {
		return nil, fmt.Errorf("read a resource of %s: %w", c.name, withKind(switchboard.ErrInvalid, errors.New("no uri")))
	}
	if c.ctx.Err() != nil {
		return nil, fmt.Errorf("read %s on %s: %w", uri, c.name, &notSentError{context.Cause(c.ctx)})
	}
	opCtx, cancel := c.opContext(ctx, c.cfg.Timeout)
	defer cancel()
	raw, rejected, err := c.request(opCtx, string(mcp.MethodResourcesRead), map[string]string{"uri": uri})
	if err != nil {
		if lost := c.sessionLost(err); lost != err {
			return nil, fmt.Errorf("read %s on %s: %w", uri, c.name, lost)
		}
		return nil, fmt.Errorf("read %s on %s: %w", uri, c.name, c.classify(ctx, opCtx, c.cfg.Timeout, err, rejected))
	}
	var res struct {
		Contents []json.RawMessage `json:"contents"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", uri, c.name, withKind(switchboard.ErrInvalid, fmt.Errorf("decode result: %w", err)))
	}
	r := &Result{}
	texts := make([]string, 0, len(res.Contents))
	for _, entry := range res.Contents {
		rc, err := decodeResourceContents(entry)
		if err != nil {
			texts = append(texts, "[resource: "+err.Error()+"]")
			continue
		}
		texts = append(texts, r.addResource(rc))
	}
	if len(texts) == 0 {
		texts = append(texts, fmt.Sprintf("[resource %s is empty]", uri))
	}
	r.Text = strings.Join(texts, "\n")
	return r, nil
}

// decodeResourceContents reads one entry of resources/read: text when it
// has text, else a blob.
func decodeResourceContents(entry json.RawMessage) (mcp.ResourceContents, error) {
	var fields struct {
		URI      string  `json:"uri"`
		MIMEType string  `json:"mimeType"`
		Text     *string `json:"text"`
		Blob     *string `json:"blob"`
	}
	if err := json.Unmarshal(entry, &fields); err != nil {
		return nil, errors.New("an entry that is not a resource's contents")
	}
	switch {
	case fields.Text != nil:
		return mcp.TextResourceContents{URI: fields.URI, MIMEType: fields.MIMEType, Text: *fields.Text}, nil
	case fields.Blob != nil:
		return mcp.BlobResourceContents{URI: fields.URI, MIMEType: fields.MIMEType, Blob: *fields.Blob}, nil
	}
	return nil, fmt.Errorf("contents of %s without text or blob", fields.URI)
}

// HasResources reports whether the server declared the resources
// capability on its last connection.
func (s *Supervisor) HasResources() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resources
}

// ReadResource reads a resource as Conn.ReadResource does, on the current
// connection, waiting for one as CallTool does. A read that did not reach
// the server is sent once more on the next connection.
func (s *Supervisor) ReadResource(ctx context.Context, uri string) (*Result, error) {
	c, err := s.await(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", uri, s.name, err)
	}
	res, err := c.ReadResource(ctx, uri)
	if err == nil || !neverSent(err) || ctx.Err() != nil {
		return withGeneration(res, c), err
	}
	next, werr := s.await(ctx, c)
	if werr != nil {
		return nil, err
	}
	res, err = next.ReadResource(ctx, uri)
	return withGeneration(res, next), err
}

// HasResources reports whether the server declared the resources
// capability on a session of the Pool's.
func (p *Pool) HasResources() bool {
	p.mu.Lock()
	sups := make([]*Supervisor, 0, len(p.sessions))
	for _, s := range p.sessions {
		sups = append(sups, s.sup)
	}
	p.mu.Unlock()
	for _, sup := range sups {
		if sup.HasResources() {
			return true
		}
	}
	return false
}

// ReadResource reads a resource on the session of key, starting it if it
// is not open, with Pool.CallTool's errors.
func (p *Pool) ReadResource(ctx context.Context, key string, labels SessionLabels, uri string) (*Result, error) {
	s, err := p.acquire(ctx, key, labels)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", uri, p.name, err)
	}
	defer p.release(s)
	return s.sup.ReadResource(ctx, uri)
}
