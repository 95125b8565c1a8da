package main

import (
	"bytes"
	"testing"
)

// Every command's -h and --help print its usage and exit 0; an unknown
// flag exits 2; a bare parley exits 2 with the usage.
func TestHelpAndBadFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "core", "edge", "bench", "keygen"} {
		for _, h := range []string{"-h", "--help"} {
			var out, errOut bytes.Buffer
			if code := run([]string{cmd, h}, &out, &errOut); code != 0 {
				t.Errorf("parley %s %s: exit %d, want 0 (%s)", cmd, h, code, errOut.String())
			}
			if out.Len()+errOut.Len() == 0 {
				t.Errorf("parley %s %s printed nothing", cmd, h)
			}
		}
		var out, errOut bytes.Buffer
		if code := run([]string{cmd, "--no-such-flag"}, &out, &errOut); code != 2 {
			t.Errorf("parley %s --no-such-flag: exit %d, want 2", cmd, code)
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
