// Package keyring seals secrets at rest — users' OAuth tokens and secrets,
// registered OAuth clients' secrets — with AES-256-GCM under a ring of keys,
// each with an id stored beside what it sealed, so that a key can be
// replaced: the ring opens what any of its keys sealed, seals with its
// first, and `switchboard secrets rotate` seals again under the first what
// an older key sealed.
//
// A ring is written as keys separated by commas, the current one first;
// each key is 32 random bytes in standard base64, optionally named
// "id:key" (else its id is derived from it). `openssl rand -base64 32`
// makes one.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// Ring seals with its current key and opens with any of its keys. Its
// methods are safe for concurrent use.
type Ring struct {
	current string
	aeads   map[string]cipher.AEAD
	order   []string
}

// ErrUnknownKey is the error of Open for a key id the ring lacks.
var ErrUnknownKey = errors.New("sealed under a key the key ring does not have")

// Parse reads a ring (see the package doc). The error wraps
// switchboard.ErrInvalid and never holds a key.
func Parse(spec string) (*Ring, error) {
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, enc, named := strings.Cut(part, ":")
		if !named {
			enc, id = part, ""
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("secrets key %d is not 32 bytes in base64 (make one with `openssl rand -base64 32`): %w", i+1, switchboard.ErrInvalid)
		}
		if id == "" {
			sum := sha256.Sum256(key)
			id = hex.EncodeToString(sum[:4])
		}
		if err := r.add(id, key); err != nil {
			return nil, err
		}
	}
	if r.current == "" {
		return nil, fmt.Errorf("no secrets key: %w", switchboard.ErrInvalid)
	}
	return r, nil
}

// Generate returns a ring of one new random key, for a process that keeps
// nothing across restarts (dev mode).
func Generate() *Ring {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	if err := r.add("ephemeral", key); err != nil {
		panic(err)
	}
	return r
}

func (r *Ring) add(id string, key []byte) error {
	if _, dup := r.aeads[id]; dup {
		return fmt.Errorf("secrets key id %q appears twice: %w", id, switchboard.ErrInvalid)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	r.aeads[id] = aead
	r.order = append(r.order, id)
	if r.current == "" {
		r.current = id
	}
	return nil
}

// Current returns the id of the key Seal uses.
func (r *Ring) Current() string { return r.current }

// Seal encrypts plaintext under the current key, bound to aad (what the
// secret belongs to: a ciphertext moved to another row does not open), and
// returns the key's id and the nonce-prefixed ciphertext.
func (r *Ring) Seal(plaintext, aad []byte) (keyID string, sealed []byte) {
	aead := r.aeads[r.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return r.current, aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal returned. The error wraps ErrUnknownKey for a key
// the ring lacks, and says the data does not open (tampered, or another
// aad) otherwise.
func (r *Ring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("key %q: %w", keyID, ErrUnknownKey)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed secret too short")
	}
	n := aead.NonceSize()
	out, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("sealed secret does not open: tampered with, or not this row's")
	}
	return out, nil
}
