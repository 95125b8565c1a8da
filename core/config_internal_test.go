package core

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/route"
)

// Every timeout has a positive default, and a negative one is refused by
// name.
func TestTimeoutsDefaultsAndValidate(t *testing.T) {
	var tm Timeouts
	tm.setDefaults()
	for _, f := range tm.fields() {
		if *f.p != f.def || f.def <= 0 {
			t.Errorf("Timeouts.%s = %v after setDefaults, want its default %v", f.name, *f.p, f.def)
		}
	}
	if tm.Request != 10*time.Second || tm.RetryMin != 5*time.Millisecond || tm.MemberCache != fanout.DefaultMemberTTL {
		t.Errorf("defaults %+v", tm)
	}
	tm.StorePut = -1
	if err := tm.Validate(); err == nil || !strings.Contains(err.Error(), "StorePut") {
		t.Errorf("Validate with a negative StorePut: %v", err)
	}
	c := Config{NodeID: "n1", DataDir: "d", Timeouts: Timeouts{Timeouts: route.Timeouts{Forward: -time.Second}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Forward") {
		t.Errorf("Config.Validate with a negative Timeouts.Forward: %v", err)
	}
}
