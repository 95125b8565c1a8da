package fanout

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// mutableMembers is a member list a test can change, counting reads.
type mutableMembers struct {
	mu    sync.Mutex
	users []string
	reads int
}

func (m *mutableMembers) MembersOf(string) (string, []string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return "w_1", slices.Clone(m.users), nil
}

func (m *mutableMembers) set(users ...string) {
	m.mu.Lock()
	m.users = users
	m.mu.Unlock()
}

// newTestFanout is a Fanout on a settable clock whose publishes go to the
// returned channel (which holds 64).
func newTestFanout(t *testing.T, large int) (*Fanout, chan *nats.Msg, *time.Time) {
	t.Helper()
	pub := make(chan *nats.Msg, 64)
	now := time.Unix(1000, 0)
	f, err := New(Config{Region: "local", LargeGroup: LargeGroup(large), Now: func() time.Time { return now },
		Publish: func(m *nats.Msg) error { pub <- m; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return f, pub, &now
}
