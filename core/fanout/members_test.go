package fanout

import (
	"testing"
	"time"
)

// A member list read while its conversation was forgotten (a membership
// change applied meanwhile) is not cached; a clean read is.
func TestMemberCacheDoesNotKeepAListReadAcrossAForget(t *testing.T) {
	c := newMemberCache(time.Now, DefaultMemberTTL)
	src := &racingMembers{c: c, users: []string{"u_a"}}
	if _, err := c.get(src, "c_1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.entries["c_1"]; ok {
		t.Fatal("a list read across a forget was cached")
	}
	m, _ := c.get(src, "c_1")
	if _, ok := c.entries["c_1"]; !ok || len(m.Users) != 1 || m.Workspace != "w_1" {
		t.Fatalf("a clean read was not cached (%+v)", m)
	}
}

// racingMembers forgets the conversation during its first read.
type racingMembers struct {
	c     *memberCache
	users []string
	n     int
}

func (r *racingMembers) MembersOf(conv string) (string, []string, error) {
	r.n++
	if r.n == 1 {
		r.c.forget(conv)
	}
	return "w_1", r.users, nil
}
