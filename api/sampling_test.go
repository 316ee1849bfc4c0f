package api_test

import (
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// samplingModel is askingModel for trigger-sampling-request, which also
// answers the server's own requests (they come with its system prompt).
func samplingModel() llmtest.Responder {
	ask := askingModel("everything__trigger-sampling-request")
	return func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if req.Messages[0].Role == openai.ChatMessageRoleSystem && strings.Contains(req.Messages[0].Content, "helpful test server") {
			return llmtest.Reply{Text: "a sampled haiku", PromptTokens: 11, CompletionTokens: 5}
		}
		r := ask(n, req)
		for i := range r.ToolCalls {
			r.ToolCalls[i].Arguments = `{"prompt":"write a haiku","maxTokens":100}`
		}
		return r
	}
}

// TestSampling: server-everything's trigger-sampling-request with each
// sampling setting, on both stores. deny (the default): the client does
// not declare sampling, so the server offers no such tool. allow: the
// scripted model answers the server, within sampling_max_tokens, and the
// request is a ledger row of its own linked to the call. approve: the user
// is asked first (a pending input); approved it runs as with allow,
// declined it is refused and recorded denied.
func TestSampling(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			deny := everythingConn(t, mcpclient.Config{})
			for _, tool := range deny.Tools() {
				if tool.Name == "trigger-sampling-request" {
					t.Errorf("with sampling deny the server offers %s", tool.Name)
				}
			}

			st := open(t)
			allow := everythingConn(t, mcpclient.Config{Sampling: "allow", SamplingMaxTokens: 50})
			svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(allow)}}, samplingModel(), nil, nil, []string{"root"}, api.Deps{Admin: st.(api.AdminStore)})
			alice := token(t, "alice")
			var r inputReply
			resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask for a haiku"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "a sampled haiku") || len(r.ToolCalls) != 1 {
				t.Fatalf("allow: got %d %+v", resp.StatusCode, r)
			}
			var sampled *openai.ChatCompletionRequest
			for _, req := range svc.model.Requests() {
				if req.Messages[0].Role == openai.ChatMessageRoleSystem {
					sampled = &req
				}
			}
			if sampled == nil || sampled.MaxTokens != 50 || !strings.Contains(sampled.Messages[1].Content, "write a haiku") || len(sampled.Tools) != 0 {
				t.Fatalf("the model's sampling request: %+v; want the server's prompt, capped at 50 tokens, no tools", sampled)
			}
			rows, err := st.ListSamplings(t.Context(), r.ToolCalls[0].ID)
			if err != nil || len(rows) != 1 || rows[0].Status != "succeeded" || rows[0].Kind != "sampling" || rows[0].PromptTokens != 11 ||
				rows[0].CompletionTokens != 5 || rows[0].MaxTokens != 50 || rows[0].UserID != "alice" || rows[0].Duration <= 0 {
				t.Errorf("the sampling row: %+v, %v", rows, err)
			}
			var detail struct {
				ToolCall struct {
					Samplings []struct {
						Kind, Status, Model string
						CompletionTokens    int `json:"completion_tokens"`
					} `json:"samplings"`
				} `json:"tool_call"`
			}
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls/"+r.ToolCalls[0].ID, token(t, "root"), "", &detail); resp.StatusCode != 200 ||
				len(detail.ToolCall.Samplings) != 1 || detail.ToolCall.Samplings[0].Kind != "sampling" || detail.ToolCall.Samplings[0].CompletionTokens != 5 {
				t.Errorf("the admin's view of the call: %d %+v", resp.StatusCode, detail)
			}

			approve := everythingConn(t, mcpclient.Config{Sampling: "approve"})
			svc = newServiceOver(t, st, []tools.Source{{Server: tools.Shared(approve)}}, samplingModel(), nil, nil, nil, api.Deps{})
			for _, action := range []string{"accept", "decline"} {
				r = inputReply{}
				do(t, "POST", svc.url+"/api/bob/chat", token(t, "bob"), `{"message":{"content":"ask for a haiku"}}`, &r)
				if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || !strings.Contains(r.PendingInputs[0].Message, "write a haiku") {
					t.Fatalf("approve: got %+v, want the user asked first", r)
				}
				url := svc.url + "/api/bob/conversations/" + r.ConversationID + "/inputs/" + r.PendingInputs[0].ID
				call := r.PendingInputs[0].ToolCallID
				r = inputReply{}
				resp := do(t, "POST", url, token(t, "bob"), `{"action":"`+action+`","content":{}}`, &r)
				rows, _ := st.ListSamplings(t.Context(), call)
				switch action {
				case "accept":
					if resp.StatusCode != 200 || !strings.Contains(r.Message.Content, "a sampled haiku") || len(rows) != 1 || rows[0].Status != "succeeded" {
						t.Errorf("approved: got %d %+v, rows %+v", resp.StatusCode, r, rows)
					}
				case "decline":
					if resp.StatusCode != 200 || strings.Contains(r.Message.Content, "a sampled haiku") || !strings.Contains(r.Message.Content, "rejected") ||
						len(rows) != 1 || rows[0].Status != "denied" {
						t.Errorf("declined: got %d %+v, rows %+v", resp.StatusCode, r, rows)
					}
				}
			}
		})
	}
}
