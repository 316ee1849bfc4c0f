package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard"
)

func key() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestSealOpenRotate(t *testing.T) {
	old, next := key(), key()
	r1, err := Parse(old)
	if err != nil {
		t.Fatal(err)
	}
	id, sealed := r1.Seal([]byte("gho_token"), []byte("alice/github"))
	if bytes.Contains(sealed, []byte("gho_token")) {
		t.Fatal("the ciphertext holds the plaintext")
	}
	if got, err := r1.Open(id, sealed, []byte("alice/github")); err != nil || string(got) != "gho_token" {
		t.Fatalf("Open: %q %v", got, err)
	}
	if _, err := r1.Open(id, sealed, []byte("bob/github")); err == nil {
		t.Error("a secret opened for another row")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := r1.Open(id, tampered, []byte("alice/github")); err == nil {
		t.Error("a tampered secret opened")
	}
	// Rotation: the new key first, the old one kept to open.
	r2, err := Parse("new:" + next + ", " + old)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Current() != "new" {
		t.Errorf("current %q", r2.Current())
	}
	if got, err := r2.Open(id, sealed, []byte("alice/github")); err != nil || string(got) != "gho_token" {
		t.Errorf("the rotated ring does not open the old: %q %v", got, err)
	}
	r3, _ := Parse(next)
	if _, err := r3.Open(id, sealed, []byte("alice/github")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a ring without the old key: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	secret := key()
	for _, spec := range []string{"", "short", "a:" + secret + ",a:" + key(), base64.StdEncoding.EncodeToString([]byte("16 bytes only!!!"))} {
		_, err := Parse(spec)
		if !errors.Is(err, switchboard.ErrInvalid) {
			t.Errorf("Parse(%q): %v", spec, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows a key")
		}
	}
}
