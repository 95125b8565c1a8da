package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

// walkthroughMarker is the line in README.md right before each fenced block
// of the curl walkthrough.
const walkthroughMarker = "<!-- walkthrough: run by cmd/parley/walkthrough_test.go -->"

// readmeWalkthrough returns the code of README.md's marked blocks, in order.
func readmeWalkthrough(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	rest := string(readme)
	for {
		_, after, ok := strings.Cut(rest, walkthroughMarker+"\n")
		if !ok {
			break
		}
		after = strings.TrimLeft(after, "\n")
		if !strings.HasPrefix(after, "```sh\n") {
			t.Fatalf("README.md: %q is not followed by a ```sh block", walkthroughMarker)
		}
		code, tail, ok := strings.Cut(strings.TrimPrefix(after, "```sh\n"), "\n```\n")
		if !ok {
			t.Fatal("README.md: a walkthrough block has no closing ```")
		}
		script.WriteString(code + "\n")
		rest = tail
	}
	if script.Len() == 0 {
		t.Fatalf("README.md has no block marked %q", walkthroughMarker)
	}
	return script.String()
}

// The curl walkthrough in README.md runs as pasted, with bash -euo
// pipefail, against a fresh `parley serve` on its default limits: every
// command succeeds (its curl stops at the first HTTP error). Run a second
// time against the same data, where the sign-ups answer 409, it succeeds
// again.
func TestREADMEWalkthroughRuns(t *testing.T) {
	script := readmeWalkthrough(t)
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough needs %s (.ci/run installs it): %v", tool, err)
		}
	}
	s := systest.Start(t, systest.Options{Config: func(c *system.Config) {
		// The defaults a user's `make run` has.
		c.Edge.HTTP.UserRate, c.Edge.HTTP.UserBurst, c.Edge.HTTP.IPRate, c.Edge.HTTP.IPBurst = 0, 0, 0, 0
	}})
	run := func(signup string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), "B="+s.URL())
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("walkthrough (sign-ups answering %s): %v\n%s", signup, err, out)
		}
		if !strings.HasPrefix(string(out), strings.Repeat(signup+"\n", 3)) {
			t.Fatalf("walkthrough: the three sign-ups did not all answer %s:\n%s", signup, out)
		}
		if !strings.Contains(string(out), `"duplicate":true`) {
			t.Fatalf("walkthrough: the retried send was not a duplicate:\n%s", out)
		}
		t.Logf("walkthrough (sign-ups %s):\n%s", signup, out)
	}
	run("201")
	run("409")
}
