package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command's -h and --help print its usage and exit 0; an unknown
// flag exits 2 with the usage; a bare parley exits 2 with the usage.
func TestHelpAndBadFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "core", "edge", "bench", "keygen", "version"} {
		for _, h := range []string{"-h", "--help"} {
			var out, errOut bytes.Buffer
			if code := run([]string{cmd, h}, &out, &errOut); code != 0 {
				t.Errorf("parley %s %s: exit %d, want 0 (%s)", cmd, h, code, errOut.String())
			}
			if u := out.String() + errOut.String(); !strings.Contains(u, "Usage") {
				t.Errorf("parley %s %s printed no usage: %q", cmd, h, u)
			}
		}
		var out, errOut bytes.Buffer
		if code := run([]string{cmd, "--no-such-flag"}, &out, &errOut); code != 2 {
			t.Errorf("parley %s --no-such-flag: exit %d, want 2", cmd, code)
		}
		if u := errOut.String(); !strings.Contains(u, "no-such-flag") || !strings.Contains(u, "Usage") {
			t.Errorf("parley %s --no-such-flag: stderr %q, want the flag named and the usage", cmd, u)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 || errOut.Len() == 0 {
		t.Errorf("bare parley: exit %d, usage %q", code, errOut.String())
	}
	if code := run([]string{"help"}, &out, &errOut); code != 0 {
		t.Errorf("parley help: exit %d", code)
	}
}
