package store

import (
	"encoding/json"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// inputGoneNote is the reason of an input whose call no longer runs when
// an answer comes.
const inputGoneNote = "the call that asked no longer runs"

// prepareInput validates a new input and fills its id and status.
func prepareInput(in *switchboard.Input) error {
	id, err := newID(in.ID, "input")
	if err != nil {
		return err
	}
	in.ID = id
	for _, ref := range []*string{&in.ConversationID, &in.TurnID, &in.ToolCallID} {
		key, ok := lookupID(*ref)
		if !ok {
			return invalid("invalid_id", "input: %q is not a UUID", *ref)
		}
		*ref = key
	}
	switch {
	case in.UserID == "":
		return invalid("invalid_input", "input without a user")
	case in.Mode != switchboard.InputForm && in.Mode != switchboard.InputURL:
		return invalid("invalid_input", "input mode %q: want form or url", in.Mode)
	case in.Mode == switchboard.InputForm && !json.Valid(in.RequestedSchema):
		return invalid("invalid_input", "a form input without a valid requested schema")
	case in.Mode == switchboard.InputURL && in.URL == "":
		return invalid("invalid_input", "a url input without a url")
	}
	if in.Mode == switchboard.InputURL {
		in.RequestedSchema = nil
	}
	in.Status, in.Action, in.Content, in.Reason = switchboard.InputPending, "", nil, ""
	return nil
}

func checkAction(action string) error {
	switch action {
	case switchboard.ActionAccept, switchboard.ActionDecline, switchboard.ActionCancel:
		return nil
	}
	return invalid("invalid_action", "action %q: want accept, decline or cancel", action)
}

func checkClose(status switchboard.InputStatus) error {
	switch status {
	case switchboard.InputCompleted, switchboard.InputCancelled, switchboard.InputExpired, switchboard.InputFailed:
		return nil
	}
	return invalid("invalid_status", "an input closes as completed, cancelled, expired or failed, not %q", status)
}

func errInputNotFound(id string) error {
	return switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeInputNotFound, "input %q not found", id)
}

// errAnswerTaken is TakeInput's error for an answer that is absent or was
// taken before: it must not be sent (again).
func errAnswerTaken(id string) error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeInputClosed, "input %s has no answer to take: it was taken before, or never given", id)
}

func errInputClosed(in switchboard.Input) error {
	why := string(in.Status)
	if in.Status == switchboard.InputAnswered {
		why = "answered (" + in.Action + ")"
	}
	if in.Reason != "" {
		why += ": " + in.Reason
	}
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeInputClosed, "input %s no longer waits for an answer: %s", in.ID, strings.TrimSpace(why))
}
