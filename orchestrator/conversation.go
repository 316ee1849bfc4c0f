package orchestrator

import (
	"context"
	"fmt"

	"github.com/switchboard-dev/switchboard"
)

// A client names a conversation with our id or with its own (the AI SDK's
// chat id, which a first message creates), and the message a regenerate or
// an edit means by its place in the transcript the client holds. This file
// turns both into the store's terms, through the store's reads of the
// user's records, so that the API hands requests over as clients send them.

// Position names a user message of a conversation as a client that holds
// its transcript sees it (the AI SDK's chat, for a regenerate or an edit):
// by the messages before it, since the client knows neither our message
// ids nor which of its messages we refused.
type Position struct {
	// Anchor is the id of the last assistant message before it in the
	// client's transcript: our turn id, for an answer we streamed.
	Anchor string
	// AfterAnchor are the texts of the client's user messages between the
	// anchor and it, in order; Prior those of all its user messages before
	// it.
	AfterAnchor, Prior []string
}

// target is what a request means in the store's terms.
type target struct {
	conversationID string // ours; empty for a new conversation
	externalID     string // the client's id of the new conversation
	// regenerate and edit name the user message (from 1) answered again
	// or replaced; 0 for none.
	regenerate, edit int
}

// target finds what req means: the conversation it names, and the user
// message its Regenerate or Edit names. A regenerate or an edit in a chat
// we never saw (its first message was refused, and this retries it) is a
// new message. It returns an error wrapping ErrNotFound
// (conversation_not_found) when a regenerate or an edit names a
// conversation the user does not have.
func (o *Orchestrator) target(ctx context.Context, req Request) (target, error) {
	var at target
	var err error
	at.conversationID, at.externalID, err = o.conversation(ctx, req.UserID, req.ConversationID, req.ExternalConversationID)
	if err != nil {
		return at, err
	}
	if !req.Regenerate && !req.Edit || at.conversationID == "" {
		return at, nil
	}
	n, err := o.userMessageAt(ctx, req.UserID, at.conversationID, req.Position)
	if err != nil {
		return at, err
	}
	if req.Regenerate {
		at.regenerate = n
	} else {
		at.edit = n
	}
	return at, nil
}

// conversation returns our id of the conversation a client named: id, or,
// when id is empty and external is not, the user's conversation whose id
// or whose client id is external. With none, it returns external as the id
// of the conversation to create.
func (o *Orchestrator) conversation(ctx context.Context, userID, id, external string) (ours, create string, err error) {
	if id != "" || external == "" {
		return id, "", nil
	}
	if switchboard.ValidID(external) {
		if _, err := o.store.GetConversation(ctx, userID, external); err == nil {
			return external, "", nil
		}
	}
	conv, err := o.store.ConversationByExternalID(ctx, userID, external)
	switch {
	case err == nil:
		return conv.ID, "", nil
	case notFound(err):
		return "", external, nil
	}
	return "", "", fmt.Errorf("load conversation %q: %w", external, err)
}

// decisionConversation returns our id of the user's conversation that d
// names. It returns an error wrapping ErrNotFound (conversation_not_found)
// when the user has none.
func (o *Orchestrator) decisionConversation(ctx context.Context, d Decision) (string, error) {
	if d.ConversationID == "" && d.ExternalConversationID != "" {
		id, _, err := o.conversation(ctx, d.UserID, "", d.ExternalConversationID)
		if err == nil && id == "" {
			err = errConversationNotFound(d.ExternalConversationID)
		}
		return id, err
	}
	conv, err := o.store.GetConversation(ctx, d.UserID, d.ConversationID)
	if notFound(err) {
		return "", errConversationNotFound(d.ConversationID)
	}
	if err != nil {
		return "", fmt.Errorf("load conversation: %w", err)
	}
	return conv.ID, nil
}

// userMessageAt returns which user message of the user's conversation (from
// 1) p names: the one after the anchor turn's messages and the user
// messages that follow it in the client's transcript (p.Anchor and
// p.AfterAnchor), or, when the anchor is not a turn of the transcript (a
// chat loaded from elsewhere), the one after all the client's user messages
// before it (p.Prior). Texts are matched in order, skipping those never
// stored (a client keeps a message we refused, so counting would name the
// wrong one).
func (o *Orchestrator) userMessageAt(ctx context.Context, userID, conversationID string, p Position) (int, error) {
	msgs, err := o.store.ListMessages(ctx, userID, conversationID)
	if notFound(err) {
		return 0, errConversationNotFound(conversationID)
	}
	if err != nil {
		return 0, fmt.Errorf("load transcript: %w", err)
	}
	base, prior := 0, p.Prior
	if p.Anchor != "" {
		end := len(msgs) // just past the anchor turn's last message
		for end > 0 && msgs[end-1].TurnID != p.Anchor {
			end--
		}
		if end > 0 {
			for _, m := range msgs[:end] {
				if m.Role == switchboard.RoleUser {
					base++
				}
			}
			msgs, prior = msgs[end:], p.AfterAnchor
		}
	}
	n := 0
	for _, m := range msgs {
		if m.Role != switchboard.RoleUser {
			continue
		}
		for len(prior) > 0 && prior[0] != m.Content {
			prior = prior[1:] // a message we never stored
		}
		if len(prior) == 0 {
			break
		}
		n, prior = n+1, prior[1:]
	}
	return base + n + 1, nil
}

// errConversationNotFound is the answer for a conversation the user does
// not have: absent, malformed or another user's alike.
func errConversationNotFound(id string) error {
	return switchboard.Errorf(switchboard.ErrNotFound, "conversation_not_found", "conversation %q not found", id)
}
