package switchboard_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard-dev/switchboard"
)

func TestIsCode(t *testing.T) {
	running := switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnRunning, "another turn of this conversation is running")
	tests := []struct {
		name string
		err  error
		code string
		want bool
	}{
		{"its code", running, switchboard.CodeTurnRunning, true},
		{"wrapped", fmt.Errorf("begin turn: %w", running), switchboard.CodeTurnRunning, true},
		{"another code", running, switchboard.CodeTurnCancelled, false},
		{"no *Error", errors.New("turn_running"), switchboard.CodeTurnRunning, false},
		{"a sentinel alone", switchboard.ErrConflict, switchboard.CodeTurnRunning, false},
		{"nil", nil, switchboard.CodeTurnRunning, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := switchboard.IsCode(tt.err, tt.code); got != tt.want {
				t.Errorf("IsCode(%v, %q): got %v, want %v", tt.err, tt.code, got, tt.want)
			}
		})
	}
}
