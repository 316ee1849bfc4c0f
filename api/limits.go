package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/switchboard-dev/switchboard"
)

// Limits bound what one user may ask of this instance.
type Limits struct {
	// RatePerMinute is how many chat requests a user may start per minute,
	// with bursts of Burst; 0 means no rate limit.
	RatePerMinute float64
	Burst         int
	// MaxConcurrentTurns caps a user's turns running at once; 0 means no cap.
	MaxConcurrentTurns int
}

// userLimits keeps each user's rate limiter and running-turn count.
type userLimits struct {
	cfg   Limits
	mu    sync.Mutex
	users map[string]*userLimit
	swept time.Time
}

type userLimit struct {
	limiter *rate.Limiter
	running int
	seen    time.Time
}

// idleAfter is how long an idle user's state is kept.
const idleAfter = 10 * time.Minute

func newUserLimits(cfg Limits) *userLimits {
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.RatePerMinute/6)))
	}
	return &userLimits{cfg: cfg, users: map[string]*userLimit{}, swept: time.Now()}
}

// acquire admits one turn of user, or returns an error wrapping
// ErrRateLimited with the seconds to wait. The returned function releases
// the turn.
func (l *userLimits) acquire(user string) (release func(), retryAfter time.Duration, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > idleAfter {
		for id, u := range l.users {
			if u.running == 0 && now.Sub(u.seen) > idleAfter {
				delete(l.users, id)
			}
		}
		l.swept = now
	}
	u := l.users[user]
	if u == nil {
		u = &userLimit{}
		if l.cfg.RatePerMinute > 0 {
			u.limiter = rate.NewLimiter(rate.Limit(l.cfg.RatePerMinute/60), l.cfg.Burst)
		}
		l.users[user] = u
	}
	u.seen = now
	if l.cfg.MaxConcurrentTurns > 0 && u.running >= l.cfg.MaxConcurrentTurns {
		return nil, time.Second, switchboard.Errorf(switchboard.ErrRateLimited, "too_many_turns",
			"you have %d turns running; wait for one to finish", u.running)
	}
	if u.limiter != nil {
		r := u.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return nil, d, switchboard.Errorf(switchboard.ErrRateLimited, "rate_limited",
				"too many messages; try again in %d seconds", int(math.Ceil(d.Seconds())))
		}
	}
	u.running++
	return func() {
		l.mu.Lock()
		u.running--
		l.mu.Unlock()
	}, 0, nil
}

// limitTurns admits a chat request under the user's limits, answering 429
// with Retry-After when over them.
func (h *Handler) limitTurns(c *gin.Context) {
	release, ok := h.admitTurn(c)
	if !ok {
		return
	}
	defer release()
	c.Next()
}

// admitTurn admits a request that runs a turn under the user's limits, or
// answers 429 with Retry-After and reports false. The returned function
// releases the turn.
func (h *Handler) admitTurn(c *gin.Context) (release func(), ok bool) {
	if h.limits == nil {
		return func() {}, true
	}
	release, wait, err := h.limits.acquire(identity(c).UserID)
	if err != nil {
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		h.writeError(c, err)
		return nil, false
	}
	return release, true
}
