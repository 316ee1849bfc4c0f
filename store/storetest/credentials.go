package storetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

// A time with nanoseconds in another zone: the stores keep it in UTC, to
// the microsecond.
var tn = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))

func credential(user, server string, sealed string) switchboard.Credential {
	return switchboard.Credential{UserID: user, Server: server, Kind: "user_secret", KeyID: "k1", Sealed: []byte(sealed),
		CreatedAt: t0, UpdatedAt: t0}
}

func putCredential(t *testing.T, s Store, c switchboard.Credential) {
	t.Helper()
	if err := s.PutCredential(t.Context(), c); err != nil {
		t.Fatalf("PutCredential(%s, %s): got error %v, want none", c.UserID, c.Server, err)
	}
}

// testCredentialsRoundTrip: the three records come back with every field
// as they were put (times in UTC, to the microsecond), sealed bytes as they
// are, and the store keeps its own copies of them.
func testCredentialsRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	sealed := []byte{0, 1, 2, 0xff, 0xfe, 'x', 0} // not text: NUL bytes, invalid UTF-8
	c := switchboard.Credential{UserID: "alice", Server: "github", Kind: "oauth", KeyID: "2024-06", Sealed: sealed,
		Scopes: []string{"repo", "read:org"}, ExpiresAt: tn, CreatedAt: tn.Add(-time.Hour), UpdatedAt: tn.Add(-time.Minute),
		LastUsedAt: tn.Add(time.Second)}
	putCredential(t, s, c)
	sealed[0] = 'X' // the caller's bytes are the caller's
	want := c
	want.Sealed = []byte{0, 1, 2, 0xff, 0xfe, 'x', 0}
	want.Scopes = []string{"repo", "read:org"}
	want.ExpiresAt, want.CreatedAt, want.UpdatedAt, want.LastUsedAt = stamp(c.ExpiresAt), stamp(c.CreatedAt), stamp(c.UpdatedAt), stamp(c.LastUsedAt)
	got, err := s.GetCredential(ctx, "alice", "github")
	if err != nil {
		t.Fatalf("GetCredential: got error %v, want none", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetCredential (-want +got):\n%s", diff)
	}
	got.Sealed[1], got.Scopes[0] = 'Y', "admin" // nor are the bytes it got
	list, err := s.ListCredentials(ctx, "alice")
	if err != nil {
		t.Fatalf("ListCredentials: got error %v, want none", err)
	}
	if diff := cmp.Diff([]switchboard.Credential{want}, list); diff != "" {
		t.Errorf("ListCredentials (-want +got):\n%s", diff)
	}

	// Without scopes or the optional times, and without created and
	// updated times: those are now.
	before := time.Now().Add(-time.Second)
	putCredential(t, s, switchboard.Credential{UserID: "alice", Server: "notes", Kind: "user_secret", KeyID: "k", Sealed: []byte("s")})
	got, err = s.GetCredential(ctx, "alice", "notes")
	if err != nil {
		t.Fatalf("GetCredential of a bare credential: got error %v, want none", err)
	}
	if got.Scopes != nil || !got.ExpiresAt.IsZero() || !got.LastUsedAt.IsZero() || got.CreatedAt.Before(before) ||
		got.UpdatedAt.Before(before) || got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("a bare credential: got %+v, want no scopes nor optional times, created and updated now, in UTC", got)
	}

	st := switchboard.OAuthState{ID: strings.Repeat("ab", 32), UserID: "alice", Server: "github", KeyID: "2024-06",
		Sealed: []byte{9, 0, 9}, CreatedAt: tn, ExpiresAt: tn.Add(10 * time.Minute)}
	if err := s.PutOAuthState(ctx, st); err != nil {
		t.Fatalf("PutOAuthState: got error %v, want none", err)
	}
	wantState := st
	wantState.Sealed = []byte{9, 0, 9}
	wantState.CreatedAt, wantState.ExpiresAt = stamp(st.CreatedAt), stamp(st.ExpiresAt)
	gotState, err := s.TakeOAuthState(ctx, st.ID)
	if err != nil {
		t.Fatalf("TakeOAuthState: got error %v, want none", err)
	}
	if diff := cmp.Diff(wantState, gotState); diff != "" {
		t.Errorf("TakeOAuthState (-want +got):\n%s", diff)
	}

	oc := switchboard.OAuthClient{Server: "github", Issuer: "https://auth.example.com/tenant", ClientID: "client-1", KeyID: "2024-06",
		Sealed: []byte{0, 'c'}, CreatedAt: tn}
	if err := s.PutOAuthClient(ctx, oc); err != nil {
		t.Fatalf("PutOAuthClient: got error %v, want none", err)
	}
	wantClient := oc
	wantClient.Sealed = []byte{0, 'c'}
	wantClient.CreatedAt = stamp(oc.CreatedAt)
	gotClient, err := s.GetOAuthClient(ctx, oc.Server, oc.Issuer)
	if err != nil {
		t.Fatalf("GetOAuthClient: got error %v, want none", err)
	}
	if diff := cmp.Diff(wantClient, gotClient); diff != "" {
		t.Errorf("GetOAuthClient (-want +got):\n%s", diff)
	}
	clients, err := s.ListOAuthClients(ctx)
	if err != nil {
		t.Fatalf("ListOAuthClients: got error %v, want none", err)
	}
	if diff := cmp.Diff([]switchboard.OAuthClient{wantClient}, clients); diff != "" {
		t.Errorf("ListOAuthClients (-want +got):\n%s", diff)
	}
}

// testCredentialsPerUser: two users' credentials for one server stay
// apart; another user, or another server, finds nothing.
func testCredentialsPerUser(t *testing.T, s Store) {
	ctx := t.Context()
	putCredential(t, s, credential("alice", "github", "alice's"))
	putCredential(t, s, credential("bob", "github", "bob's"))
	for user, want := range map[string]string{"alice": "alice's", "bob": "bob's"} {
		got, err := s.GetCredential(ctx, user, "github")
		if err != nil || string(got.Sealed) != want || got.UserID != user {
			t.Errorf("GetCredential(%s): got %s's %q, %v, want %q", user, got.UserID, got.Sealed, err, want)
		}
	}
	_, err := s.GetCredential(ctx, "carol", "github")
	wantErr(t, "GetCredential of a user without one", err, switchboard.ErrNotFound)
	_, err = s.GetCredential(ctx, "alice", "linear")
	wantErr(t, "GetCredential for another server", err, switchboard.ErrNotFound)
	called := false
	err = s.UpdateCredential(ctx, "carol", "github", func(*switchboard.Credential) error { called = true; return nil })
	wantErr(t, "UpdateCredential of a user without one", err, switchboard.ErrNotFound)
	if called {
		t.Errorf("UpdateCredential of a user without one: update ran, want it not to")
	}
	wantErr(t, "DeleteCredential of a user without one", s.DeleteCredential(ctx, "carol", "github"), switchboard.ErrNotFound)

	// A replace is the user's; a delete too.
	putCredential(t, s, credential("bob", "github", "bob's again"))
	if err := s.DeleteCredential(ctx, "bob", "github"); err != nil {
		t.Fatalf("DeleteCredential: got error %v, want none", err)
	}
	_, err = s.GetCredential(ctx, "bob", "github")
	wantErr(t, "GetCredential after its delete", err, switchboard.ErrNotFound)
	wantErr(t, "DeleteCredential again", s.DeleteCredential(ctx, "bob", "github"), switchboard.ErrNotFound)
	if got, err := s.GetCredential(ctx, "alice", "github"); err != nil || string(got.Sealed) != "alice's" {
		t.Errorf("alice's after bob's were replaced and deleted: got %q, %v, want %q", got.Sealed, err, "alice's")
	}
}

// testPutCredentialReplaces: a second put for a user and server replaces
// the first, every field.
func testPutCredentialReplaces(t *testing.T, s Store) {
	putCredential(t, s, switchboard.Credential{UserID: "alice", Server: "github", Kind: "oauth", KeyID: "k1", Sealed: []byte("one"),
		Scopes: []string{"repo"}, ExpiresAt: t0, CreatedAt: t0, UpdatedAt: t0, LastUsedAt: t0})
	second := switchboard.Credential{UserID: "alice", Server: "github", Kind: "user_secret", KeyID: "k2", Sealed: []byte("two"),
		CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
	putCredential(t, s, second)
	got, err := s.GetCredential(t.Context(), "alice", "github")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, got); diff != "" {
		t.Errorf("after a replace (-want +got):\n%s", diff)
	}
}

// testListCredentials: a user's, ordered by server; everyone's for "",
// ordered by user then server; none is empty.
func testListCredentials(t *testing.T, s Store) {
	ctx := t.Context()
	for _, k := range [][2]string{{"bob", "linear"}, {"alice", "linear"}, {"bob", "Github"}, {"alice", "github"}, {"Zed", "github"}} {
		putCredential(t, s, credential(k[0], k[1], k[0]+"/"+k[1]))
	}
	keys := func(creds []switchboard.Credential) []string {
		var out []string
		for _, c := range creds {
			out = append(out, c.UserID+"/"+c.Server)
			if string(c.Sealed) != c.UserID+"/"+c.Server {
				t.Errorf("the credential of %s for %s holds %q", c.UserID, c.Server, c.Sealed)
			}
		}
		return out
	}
	for _, tt := range []struct {
		user string
		want []string
	}{
		{"alice", []string{"alice/github", "alice/linear"}},
		{"bob", []string{"bob/Github", "bob/linear"}},
		// By bytes: upper case first.
		{"", []string{"Zed/github", "alice/github", "alice/linear", "bob/Github", "bob/linear"}},
	} {
		got, err := s.ListCredentials(ctx, tt.user)
		if err != nil {
			t.Fatalf("ListCredentials(%q): got error %v, want none", tt.user, err)
		}
		if diff := cmp.Diff(tt.want, keys(got)); diff != "" {
			t.Errorf("ListCredentials(%q) (-want +got):\n%s", tt.user, diff)
		}
	}
	got, err := s.ListCredentials(ctx, "carol")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("ListCredentials of a user without any: got %v, %v, want an empty list", got, err)
	}
}

// testUpdateCredential: what update leaves is stored (but the user and the
// server); an update that fails, or leaves the credential invalid, changes
// nothing; reads do not wait for an update in progress.
func testUpdateCredential(t *testing.T, s Store) {
	ctx := t.Context()
	orig := switchboard.Credential{UserID: "alice", Server: "github", Kind: "oauth", KeyID: "k1", Sealed: []byte("v1"),
		Scopes: []string{"repo"}, ExpiresAt: t0, CreatedAt: t0, UpdatedAt: t0}
	putCredential(t, s, orig)
	get := func() switchboard.Credential {
		t.Helper()
		c, err := s.GetCredential(ctx, "alice", "github")
		if err != nil {
			t.Fatalf("GetCredential: got error %v, want none", err)
		}
		return c
	}

	want := orig
	want.KeyID, want.Sealed, want.Scopes = "k2", []byte("v2"), []string{"repo", "user"}
	want.ExpiresAt, want.UpdatedAt, want.LastUsedAt = stamp(tn), stamp(tn), stamp(tn.Add(time.Second))
	err := s.UpdateCredential(ctx, "alice", "github", func(c *switchboard.Credential) error {
		if diff := cmp.Diff(orig, *c); diff != "" {
			t.Errorf("update's credential (-want +got):\n%s", diff)
		}
		// A read meanwhile sees the credential as it was, at once.
		if got := get(); string(got.Sealed) != "v1" {
			t.Errorf("a read during the update: got %q, want %q", got.Sealed, "v1")
		}
		c.KeyID, c.Sealed, c.Scopes = "k2", []byte("v2"), []string{"repo", "user"}
		c.ExpiresAt, c.UpdatedAt, c.LastUsedAt = tn, tn, tn.Add(time.Second)
		c.UserID, c.Server = "mallory", "elsewhere" // ignored
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCredential: got error %v, want none", err)
	}
	if diff := cmp.Diff(want, get()); diff != "" {
		t.Errorf("after UpdateCredential (-want +got):\n%s", diff)
	}
	if _, err := s.GetCredential(ctx, "mallory", "elsewhere"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the user and server update set: got %v, want ErrNotFound (they stay)", err)
	}

	refused := errors.New("the authorization server refused the refresh")
	err = s.UpdateCredential(ctx, "alice", "github", func(c *switchboard.Credential) error {
		c.Sealed[0], c.Scopes[0], c.KeyID = 'X', "admin", "k3" // in place, half done
		return refused
	})
	if err != refused {
		t.Errorf("an update that fails: got error %v, want its own, %v", err, refused)
	}
	if diff := cmp.Diff(want, get()); diff != "" {
		t.Errorf("after an update that failed (-want +got):\n%s", diff)
	}

	err = s.UpdateCredential(ctx, "alice", "github", func(c *switchboard.Credential) error {
		c.Sealed = nil
		return nil
	})
	wantErr(t, "an update that leaves no sealed value", err, switchboard.ErrInvalid)
	if diff := cmp.Diff(want, get()); diff != "" {
		t.Errorf("after an update that left it invalid (-want +got):\n%s", diff)
	}
}

// counterCredential is a credential whose sealed value is a counter.
func counterCredential(n uint64) switchboard.Credential {
	c := credential("alice", "github", "")
	c.Sealed = binary.BigEndian.AppendUint64(nil, n)
	return c
}

// addOne is an update that increments the counter slowly: reads it,
// sleeps, and writes it plus one. Two at once that were not serialised
// would both read the same value.
func addOne(c *switchboard.Credential) error {
	if len(c.Sealed) != 8 {
		return fmt.Errorf("the counter is %d bytes, want 8", len(c.Sealed))
	}
	n := binary.BigEndian.Uint64(c.Sealed)
	time.Sleep(50 * time.Millisecond) // a token refresh, widening the race
	c.Sealed = binary.BigEndian.AppendUint64(nil, n+1)
	return nil
}

// updateTwiceAtOnce runs addOne through a and through b at the same time
// and checks that both counted.
func updateTwiceAtOnce(t *testing.T, a, b Store) {
	t.Helper()
	ctx := t.Context()
	putCredential(t, a, counterCredential(40))
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 2)
	for i, s := range []Store{a, b} {
		wg.Go(func() {
			<-start
			errs[i] = s.UpdateCredential(ctx, "alice", "github", addOne)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateCredential %d: got error %v, want none", i+1, err)
		}
	}
	got, err := b.GetCredential(ctx, "alice", "github")
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint64(got.Sealed); n != 42 {
		t.Errorf("the counter after two concurrent updates from 40: got %d, want 42 (the lock serialises them)", n)
	}
}

// testUpdateCredentialConcurrent: two updates of one credential through
// one store run one after the other.
func testUpdateCredentialConcurrent(t *testing.T, s Store) { updateTwiceAtOnce(t, s, s) }

// testUpdateCredentialAcrossInstances: two updates of one credential
// through two instances run one after the other: the lock is the store's,
// not a process's.
func testUpdateCredentialAcrossInstances(t *testing.T, in Instances) {
	updateTwiceAtOnce(t, in.Open(t, "a"), in.Open(t, "b"))
}

// testPutWaitsForUpdate: a put of a credential being updated waits for the
// update, and is what stays. (Were it not to wait, the update would store
// its value over the put's, unless the put came after it anyway: the test
// may pass without the wait on a slow machine, never fail with it.)
func testPutWaitsForUpdate(t *testing.T, in Instances) {
	ctx := t.Context()
	a, b := in.Open(t, "a"), in.Open(t, "b")
	putCredential(t, a, credential("alice", "github", "v1"))
	put := make(chan error, 1)
	err := a.UpdateCredential(ctx, "alice", "github", func(c *switchboard.Credential) error {
		go func() { put <- b.PutCredential(ctx, credential("alice", "github", "put")) }()
		time.Sleep(50 * time.Millisecond) // for the put to reach the lock
		c.Sealed = []byte("updated")
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCredential: got error %v, want none", err)
	}
	if err := <-put; err != nil {
		t.Fatalf("PutCredential during the update: got error %v, want none", err)
	}
	if got, err := a.GetCredential(ctx, "alice", "github"); err != nil || string(got.Sealed) != "put" {
		t.Errorf("after a put during an update: got %q, %v, want the put's %q", got.Sealed, err, "put")
	}
}

func oauthState(id string, expires time.Time) switchboard.OAuthState {
	return switchboard.OAuthState{ID: id, UserID: "alice", Server: "github", KeyID: "k1", Sealed: []byte("verifier"),
		CreatedAt: expires.Add(-10 * time.Minute), ExpiresAt: expires}
}

// testOAuthStateSingleUse: a state is taken once: a second take, or the
// loser of two at once, finds nothing. An expired one is taken too (its
// caller says it expired) until pruned.
func testOAuthStateSingleUse(t *testing.T, s Store) {
	ctx := t.Context()
	later := time.Now().Add(10 * time.Minute)
	if err := s.PutOAuthState(ctx, oauthState("s1", later)); err != nil {
		t.Fatalf("PutOAuthState: got error %v, want none", err)
	}
	wantErr(t, "PutOAuthState with a taken id", s.PutOAuthState(ctx, oauthState("s1", later)), switchboard.ErrConflict)
	if got, err := s.TakeOAuthState(ctx, "s1"); err != nil || got.ID != "s1" || string(got.Sealed) != "verifier" {
		t.Fatalf("TakeOAuthState: got %+v, %v, want s1", got, err)
	}
	_, err := s.TakeOAuthState(ctx, "s1")
	wantErr(t, "TakeOAuthState again", err, switchboard.ErrNotFound)
	_, err = s.TakeOAuthState(ctx, "never")
	wantErr(t, "TakeOAuthState of an unknown id", err, switchboard.ErrNotFound)

	const takers = 8
	if err := s.PutOAuthState(ctx, oauthState("s2", later)); err != nil {
		t.Fatal(err)
	}
	var won, lost atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range takers {
		wg.Go(func() {
			<-start
			_, err := s.TakeOAuthState(ctx, "s2")
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, switchboard.ErrNotFound):
				lost.Add(1)
			default:
				t.Errorf("a concurrent TakeOAuthState: got error %v, want none or ErrNotFound", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || lost.Load() != takers-1 {
		t.Errorf("%d concurrent takes of one state: got %d that got it and %d that found nothing, want 1 and %d",
			takers, won.Load(), lost.Load(), takers-1)
	}

	// Expired: taken as it is; pruned, gone.
	if err := s.PutOAuthState(ctx, oauthState("expired", time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TakeOAuthState(ctx, "expired"); err != nil || !got.ExpiresAt.Before(time.Now()) {
		t.Errorf("TakeOAuthState of an expired state: got %+v, %v, want it, expired", got, err)
	}
	now := time.Now()
	for id, exp := range map[string]time.Time{"old": now.Add(-2 * time.Hour), "recent": now.Add(-30 * time.Minute), "live": later} {
		if err := s.PutOAuthState(ctx, oauthState(id, exp)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PruneOAuthStates(ctx, now.Add(-time.Hour)); err != nil || n != 1 {
		t.Errorf("PruneOAuthStates of those expired over an hour ago: got %d, %v, want 1", n, err)
	}
	_, err = s.TakeOAuthState(ctx, "old")
	wantErr(t, "TakeOAuthState of a pruned state", err, switchboard.ErrNotFound)
	for _, id := range []string{"recent", "live"} {
		if _, err := s.TakeOAuthState(ctx, id); err != nil {
			t.Errorf("TakeOAuthState of %s, not pruned: got error %v, want none", id, err)
		}
	}
}

// testOAuthClients: one client per server and issuer, replaced by the
// next put; listed by server then issuer.
func testOAuthClients(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.GetOAuthClient(ctx, "github", "https://github.com")
	wantErr(t, "GetOAuthClient before any", err, switchboard.ErrNotFound)
	if got, err := s.ListOAuthClients(ctx); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ListOAuthClients before any: got %v, %v, want an empty list", got, err)
	}
	client := func(server, issuer, id string) switchboard.OAuthClient {
		return switchboard.OAuthClient{Server: server, Issuer: issuer, ClientID: id, KeyID: "k-" + id, Sealed: []byte("secret of " + id), CreatedAt: t0}
	}
	for _, c := range []switchboard.OAuthClient{
		client("linear", "https://linear.app", "l1"),
		client("github", "https://github.com", "g1"),
		client("github", "https://auth.example.com", "g2"),
		client("github", "https://github.com", "g3"), // replaces g1
	} {
		if err := s.PutOAuthClient(ctx, c); err != nil {
			t.Fatalf("PutOAuthClient(%s): got error %v, want none", c.ClientID, err)
		}
	}
	if got, err := s.GetOAuthClient(ctx, "github", "https://github.com"); err != nil || got.ClientID != "g3" ||
		got.KeyID != "k-g3" || string(got.Sealed) != "secret of g3" {
		t.Errorf("GetOAuthClient after a replace: got %+v, %v, want g3", got, err)
	}
	_, err = s.GetOAuthClient(ctx, "linear", "https://github.com")
	wantErr(t, "GetOAuthClient of another server's issuer", err, switchboard.ErrNotFound)
	got, err := s.ListOAuthClients(ctx)
	if err != nil {
		t.Fatalf("ListOAuthClients: got error %v, want none", err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ClientID)
	}
	if diff := cmp.Diff([]string{"g2", "g3", "l1"}, ids); diff != "" {
		t.Errorf("ListOAuthClients (-want +got):\n%s", diff)
	}
}

// testCredentialsInvalid: records without what names them or what they
// seal are refused with a code, and nothing is stored.
func testCredentialsInvalid(t *testing.T, s Store) {
	ctx := t.Context()
	long := strings.Repeat("x", 256)
	ok := credential("alice", "github", "sealed")
	with := func(f func(*switchboard.Credential)) switchboard.Credential { c := ok; f(&c); return c }
	for name, c := range map[string]switchboard.Credential{
		"no user":          with(func(c *switchboard.Credential) { c.UserID = "" }),
		"no server":        with(func(c *switchboard.Credential) { c.Server = "" }),
		"no kind":          with(func(c *switchboard.Credential) { c.Kind = "" }),
		"no key id":        with(func(c *switchboard.Credential) { c.KeyID = "" }),
		"no sealed value":  with(func(c *switchboard.Credential) { c.Sealed = nil }),
		"user id too long": with(func(c *switchboard.Credential) { c.UserID = long }),
		"server too long":  with(func(c *switchboard.Credential) { c.Server = long }),
		"kind too long":    with(func(c *switchboard.Credential) { c.Kind = long[:51] }),
	} {
		err := s.PutCredential(ctx, c)
		if !errors.Is(err, switchboard.ErrInvalid) || switchboard.ErrorCode(err) != "invalid_credential" {
			t.Errorf("PutCredential with %s: got error %v (code %q), want ErrInvalid, invalid_credential", name, err, switchboard.ErrorCode(err))
		}
	}
	if got, err := s.ListCredentials(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("credentials after invalid puts: got %d, %v, want none", len(got), err)
	}

	okState := oauthState("s", time.Now().Add(time.Minute))
	withState := func(f func(*switchboard.OAuthState)) switchboard.OAuthState { st := okState; f(&st); return st }
	for name, st := range map[string]switchboard.OAuthState{
		"no id":           withState(func(s *switchboard.OAuthState) { s.ID = "" }),
		"no user":         withState(func(s *switchboard.OAuthState) { s.UserID = "" }),
		"no server":       withState(func(s *switchboard.OAuthState) { s.Server = "" }),
		"no key id":       withState(func(s *switchboard.OAuthState) { s.KeyID = "" }),
		"no sealed value": withState(func(s *switchboard.OAuthState) { s.Sealed = nil }),
		"no expiry":       withState(func(s *switchboard.OAuthState) { s.ExpiresAt = time.Time{} }),
		"id too long":     withState(func(s *switchboard.OAuthState) { s.ID = long }),
	} {
		err := s.PutOAuthState(ctx, st)
		if !errors.Is(err, switchboard.ErrInvalid) || switchboard.ErrorCode(err) != "invalid_oauth_state" {
			t.Errorf("PutOAuthState with %s: got error %v (code %q), want ErrInvalid, invalid_oauth_state", name, err, switchboard.ErrorCode(err))
		}
	}
	_, err := s.TakeOAuthState(ctx, "s")
	wantErr(t, "TakeOAuthState after invalid puts", err, switchboard.ErrNotFound)

	okClient := switchboard.OAuthClient{Server: "github", Issuer: "https://github.com", ClientID: "c", KeyID: "k", Sealed: []byte("s")}
	withClient := func(f func(*switchboard.OAuthClient)) switchboard.OAuthClient { c := okClient; f(&c); return c }
	for name, c := range map[string]switchboard.OAuthClient{
		"no server":       withClient(func(c *switchboard.OAuthClient) { c.Server = "" }),
		"no issuer":       withClient(func(c *switchboard.OAuthClient) { c.Issuer = "" }),
		"no client id":    withClient(func(c *switchboard.OAuthClient) { c.ClientID = "" }),
		"no key id":       withClient(func(c *switchboard.OAuthClient) { c.KeyID = "" }),
		"no sealed value": withClient(func(c *switchboard.OAuthClient) { c.Sealed = nil }),
		"issuer too long": withClient(func(c *switchboard.OAuthClient) { c.Issuer = "https://" + strings.Repeat("i", 2000) }),
	} {
		err := s.PutOAuthClient(ctx, c)
		if !errors.Is(err, switchboard.ErrInvalid) || switchboard.ErrorCode(err) != "invalid_oauth_client" {
			t.Errorf("PutOAuthClient with %s: got error %v (code %q), want ErrInvalid, invalid_oauth_client", name, err, switchboard.ErrorCode(err))
		}
	}
	if got, err := s.ListOAuthClients(ctx); err != nil || len(got) != 0 {
		t.Errorf("clients after invalid puts: got %d, %v, want none", len(got), err)
	}
}

// testLockWaitEndsWithContext: a writer waiting for the lock of a
// credential being updated gives up when its context ends.
func testLockWaitEndsWithContext(t *testing.T, in Instances) {
	a, b := in.Open(t, "a"), in.Open(t, "b")
	putCredential(t, a, credential("alice", "github", "v1"))
	err := a.UpdateCredential(t.Context(), "alice", "github", func(c *switchboard.Credential) error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		called := false
		err := b.UpdateCredential(ctx, "alice", "github", func(*switchboard.Credential) error { called = true; return nil })
		wantErr(t, "UpdateCredential waiting past its deadline", err, context.DeadlineExceeded)
		wantErr(t, "UpdateCredential waiting past its deadline", err, switchboard.ErrUnavailable)
		if called {
			t.Errorf("UpdateCredential waiting past its deadline: its update ran, want it not to")
		}
		c.Sealed = []byte("v2")
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCredential: got error %v, want none", err)
	}
	if got, err := b.GetCredential(t.Context(), "alice", "github"); err != nil || string(got.Sealed) != "v2" {
		t.Errorf("after the update: got %q, %v, want %q", got.Sealed, err, "v2")
	}
}
