package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

// part returns a binary content part of call id with data.
func part(id string, index int, kind switchboard.ContentKind, mimeType, uri string, data []byte) switchboard.ContentPart {
	sum := sha256.Sum256(data)
	return switchboard.ContentPart{ToolCallID: id, Index: index, Kind: kind, MIMEType: mimeType, URI: uri,
		Size: len(data), SHA256: hex.EncodeToString(sum[:]), Data: data}
}

// listed is p as listings carry it: without the bytes.
func listed(parts ...switchboard.ContentPart) []switchboard.ContentPart {
	out := make([]switchboard.ContentPart, len(parts))
	for i, p := range parts {
		p.Data = nil
		out[i] = p
	}
	return out
}

// testToolCallContent: the binary parts of a result are kept with their
// call, listed without their bytes, read one at a time by their owner only,
// and the attachments of a tool_result message come back with the
// transcript and the history.
func testToolCallContent(t *testing.T, s Store) {
	ctx := t.Context()
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 0xff, 7}, 1000)...)
	blob := []byte{0, 1, 2, 3}
	ts := newTurn(t, s, "alice", "", "take a screenshot")
	id := switchboard.NewID()
	parts := []switchboard.ContentPart{
		part(id, 0, switchboard.ContentImage, "image/png", "", png),
		part(id, 1, switchboard.ContentResource, "application/octet-stream", "file:///c.bin", blob),
	}
	running := switchboard.ToolCall{ID: id, CallID: "c1", Server: "browser", Tool: "shot", ExposedName: "browser__shot",
		Status: switchboard.CallRunning, StartedAt: time.Now()}
	save(t, s, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning}, ToolCalls: []switchboard.ToolCall{running}})
	done := running
	done.Status, done.Result, done.FinishedAt = switchboard.CallSucceeded, "[image image/png, 3008 bytes]", time.Now()
	done.Content = parts
	result := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
		Content: done.Result, ToolCallID: "c1", ToolName: "browser__shot", Timestamp: time.Now(), Attachments: listed(parts...)}
	answer := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageText,
		Content: "Here it is.", Timestamp: time.Now()}
	save(t, s, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, FinishedAt: time.Now()},
		Messages: []switchboard.Message{result, answer}, ToolCalls: []switchboard.ToolCall{done}})
	// The store keeps its own copy of the bytes: the caller's changes
	// after the save do not reach it.
	saved := [][]byte{bytes.Clone(png), bytes.Clone(blob)}
	png[9] ^= 0xff

	got, err := s.GetToolCall(ctx, "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(listed(parts...), got.Content); diff != "" {
		t.Errorf("GetToolCall: content (-want +got):\n%s", diff)
	}
	page, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "alice"})
	if err != nil || len(page) != 1 || !cmp.Equal(listed(parts...), page[0].Content) {
		t.Errorf("ListToolCalls: got %+v, %v; want the call with its content listed, no bytes", page, err)
	}
	for i, want := range saved {
		p, err := s.GetToolCallContent(ctx, "alice", id, i)
		wantPart := parts[i]
		wantPart.Data = want
		if err != nil || !cmp.Equal(wantPart, p, cmp.Comparer(bytes.Equal)) {
			t.Errorf("GetToolCallContent(%d): got %+v (%d bytes), %v; want %+v (%d bytes)", i, listed(p), len(p.Data), err, listed(wantPart), len(want))
		}
	}
	for _, tt := range []struct {
		user, id string
		index    int
	}{{"bob", id, 0}, {"alice", id, 2}, {"alice", id, -1}, {"alice", "not-an-id", 0}, {"alice", switchboard.NewID(), 0}} {
		_, err := s.GetToolCallContent(ctx, tt.user, tt.id, tt.index)
		wantErr(t, "GetToolCallContent("+tt.user+", "+tt.id+")", err, switchboard.ErrNotFound)
	}

	// The attachments come back with the transcript and with the history
	// of the next turn.
	msgs, err := s.ListMessages(ctx, "alice", ts.Conversation.ID)
	if err != nil {
		t.Fatal(err)
	}
	var back *switchboard.Message
	for i := range msgs {
		if msgs[i].ID == result.ID {
			back = &msgs[i]
		}
	}
	if back == nil || !cmp.Equal(result.Attachments, back.Attachments) {
		t.Errorf("ListMessages: tool result %+v; want its attachments %+v", back, result.Attachments)
	}
	history := begin(t, s, &switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID},
		Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "and again"}})
	found := false
	for _, m := range history {
		if m.ID == result.ID {
			found = cmp.Equal(result.Attachments, m.Attachments)
		}
	}
	if !found {
		t.Errorf("BeginTurn: the history lacks the tool result with its attachments: %+v", history)
	}

	// Retention removes the bytes and keeps the listing.
	if n, err := s.PruneToolCallPayloads(ctx, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("PruneToolCallPayloads: %d, %v; want 1", n, err)
	}
	_, err = s.GetToolCallContent(ctx, "alice", id, 0)
	if !errors.Is(err, switchboard.ErrNotFound) || switchboard.ErrorCode(err) != "content_pruned" {
		t.Errorf("GetToolCallContent after pruning: got %v; want not found, code content_pruned", err)
	}
	if got, err := s.GetToolCall(ctx, "alice", id); err != nil || len(got.Content) != 2 || got.Content[1].SHA256 != parts[1].SHA256 {
		t.Errorf("GetToolCall after pruning: content %+v, %v; want the listing kept", got.Content, err)
	}
}
