// Package storetest tests implementations of Switchboard's store contract,
// and provides throw-away Postgres databases to tests.
//
// Run is the contract suite that store.Memory and store.Postgres both pass;
// PostgresURL gives a test its own migrated database. Both are meant for
// tests, and live in a non-test file so that other packages' tests can use
// them.
//
// The suite's tests are filed by subject: turns.go (a turn's start and
// saves), records.go (validation, what is kept, contexts),
// agents.go, conversations.go, feedback.go, regenerate.go (regenerate and edit), approvals.go,
// ledger.go (admins' listings and statistics), credentials.go (users'
// sealed credentials, connect flows, registered clients) and leases.go
// (RunInstances: several instances on one store, restarts; credentials'
// locks across instances).
package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// Store is the contract the suite tests, documented on store.Store.
type Store = store.Store

// Run runs the contract suite. open returns a new, empty store for the
// subtest t; subtests run in parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		// turns.go: a turn's start and its saves.
		{"CreateAndContinue", testCreateAndContinue},
		{"Title", testTitle},
		{"ConversationNotFound", testConversationNotFound},
		{"HistoryWindow", testHistoryWindow},
		{"SaveTurnUpsert", testSaveTurnUpsert},
		{"SaveTurnAtomic", testSaveTurnAtomic},
		{"IdempotencyKey", testIdempotencyKey},
		{"RequestHash", testRequestHash},
		{"UpdatedAtMovesAtTurnBoundaries", testUpdatedAt},
		{"ListTurns", testListTurns},
		{"OneRunningTurn", testOneRunningTurn},
		{"CancelRequestEndsWithRunning", testCancelRequestEndsWithRunning},
		{"Concurrent", testConcurrent},
		// agents.go: conversations' current agents, turns' and calls' agents.
		{"Agents", testAgents},
		{"AgentStats", testAgentStats},
		// records.go: what the stores accept and how they keep it.
		{"MCPSessions", testMCPSessions},
		{"Invalid", testInvalid},
		{"MessagesRoundTrip", testMessagesRoundTrip},
		{"Sanitize", testSanitize},
		{"Canceled", testCanceled},
		// conversations.go.
		{"Conversations", testConversations},
		{"DeleteCascades", testDeleteCascades},
		{"ExternalID", testExternalID},
		{"OtherUsersFindNothing", testOtherUsersFindNothing},
		// feedback.go: users' ratings of messages.
		{"Feedback", testFeedback},
		// regenerate.go: answering a message again, and editing one.
		{"Regenerate", testRegenerate},
		{"RegenerateNamesTheLastWhenTheCountIsOff", testRegenerateLast},
		{"Edit", testEdit},
		{"RegenerateCancelsWaitingApprovals", testRegenerateCancelsWaitingApprovals},
		// approvals.go: calls that wait for a person.
		{"NewTurnCancelsWaitingApprovals", testNewTurnCancelsWaitingApprovals},
		{"DecideToolCall", testDecideToolCall},
		// inputs.go: servers' questions to users.
		{"Inputs", testInputs},
		{"Samplings", testSamplings},
		// ledger.go: the tool-call ledger for admins.
		{"Pagination", testPagination},
		{"PageSize", testPageSize},
		{"Filters", testFilters},
		{"Stats", testStats},
		{"PruneToolCallPayloads", testPrune},
		{"PruneLeavesRunningCalls", testPruneLeavesRunningCalls},
		// content.go: the binary parts of results.
		{"ToolCallContent", testToolCallContent},
		// credentials.go: users' sealed credentials, connect flows and
		// registered clients.
		{"CredentialsRoundTrip", testCredentialsRoundTrip},
		{"CredentialsPerUser", testCredentialsPerUser},
		{"PutCredentialReplaces", testPutCredentialReplaces},
		{"ListCredentials", testListCredentials},
		{"UpdateCredential", testUpdateCredential},
		{"UpdateCredentialConcurrent", testUpdateCredentialConcurrent},
		{"OAuthStateSingleUse", testOAuthStateSingleUse},
		{"OAuthClients", testOAuthClients},
		{"CredentialsInvalid", testCredentialsInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// jsonEqual compares JSON by value: Postgres reorders object keys.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return cmp.Equal(va, vb)
})

// t0 is a fixed time for rows whose order tests check.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// begin begins a turn. A conversation runs one turn at a time, so a turn
// the test left running in the conversation is ended first.
func begin(t *testing.T, s Store, ts *switchboard.TurnStart) []switchboard.Message {
	t.Helper()
	history, err := s.BeginTurn(t.Context(), ts)
	if switchboard.ErrorCode(err) == "turn_running" {
		endRunning(t, s, ts.Turn.UserID, ts.Conversation.ID)
		history, err = s.BeginTurn(t.Context(), ts)
	}
	if err != nil {
		t.Fatalf("BeginTurn: got error %v, want none", err)
	}
	return history
}

// endRunning completes the running turns of the user's conversation.
func endRunning(t *testing.T, s Store, user, conversation string) {
	t.Helper()
	turns, err := s.ListTurns(t.Context(), user, conversation)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range turns {
		if tr.Status == switchboard.TurnRunning {
			tr.Status, tr.FinishedAt = switchboard.TurnCompleted, time.Now()
			save(t, s, &switchboard.TurnUpdate{Turn: tr})
		}
	}
}

// newTurn begins a turn of user in conversation (a new one if empty).
func newTurn(t *testing.T, s Store, user, conversation, content string) switchboard.TurnStart {
	t.Helper()
	ts := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: conversation},
		Turn:         switchboard.Turn{UserID: user},
		UserMessage:  switchboard.Message{Content: content},
	}
	begin(t, s, &ts)
	return ts
}

func save(t *testing.T, s Store, u *switchboard.TurnUpdate) {
	t.Helper()
	if err := s.SaveTurn(t.Context(), u); err != nil {
		t.Fatalf("SaveTurn: got error %v, want none", err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func messageIDs(msgs []switchboard.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func callIDs(calls []switchboard.ToolCall) []string {
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return ids
}
