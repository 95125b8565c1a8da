package parley_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/parley-chat/parley"

// layers says which of the repo's top-level folders each folder may import
// (besides itself), as in STYLE.md. Nothing may import cmd/, testnet/ or
// e2e/.
var layers = map[string][]string{
	"crdt":      {},
	"syncproto": {"crdt"},
	"edge":      {"syncproto", "crdt", "blob"},
	"core":      {"syncproto", "crdt", "blob"},
	"client":    {"syncproto", "crdt"},
	"testnet":   {"syncproto", "client"},
	"bench":     {"syncproto", "client", "crdt"},
	"system":    {"edge", "core", "syncproto", "crdt", "client", "blob"},
	"systest":   {"system", "edge", "core", "client", "syncproto", "crdt", "blob", "web"},
	"e2e":       {"systest", "system", "edge", "core", "client", "syncproto", "crdt", "blob", "bench", "web"},
	"cmd":       {"*"},
	"web":       {"syncproto", "crdt", "client"},
	"internal":  {},
	"blob":      {},
}

// shared are the folders every layer may import: test support that
// depends on nothing else in the module. Only tests may import them.
var shared = map[string]bool{"internal": true}

// testOnly are the test harnesses: only tests, and other harnesses, may
// import them.
var testOnly = map[string]bool{module + "/systest": true, module + "/core/coretest": true}

// noImport are the folders nothing outside them imports.
var noImport = map[string]bool{"cmd": true, "testnet": true, "e2e": true}

// why explains each rule when it breaks.
var why = map[string]string{
	"edge":      "edge and core meet only on syncproto (NATS request/reply); edge never stores history or decides order",
	"core":      "core never holds a client connection; it meets edges only on syncproto",
	"crdt":      "crdt is pure data types with no dependencies",
	"syncproto": "the wire contract depends on nothing but crdt",
	"client":    "the SDK speaks only the wire contract",
	"testnet":   "testnet drives built binaries through the SDK, never internals",
	"internal":  "internal/ holds test support every layer shares; it depends on nothing else in the module",
	"blob":      "the attachment byte store is a library both edge (uploads, downloads) and core (deleting unreferenced blobs) use: it knows nothing of theirs",
	"system":    "system is the whole system in one process for tests and `parley serve`: edge and core wired over in-process NATS, never cmd/ or testnet/",
	"bench":     "the load generator is a client: it speaks the wire contract through the SDK, and systems in its process come from its caller's hooks",
	"systest":   "systest is the test harness of the whole system in one process (system/, core/coretest, edges, the web app, SDK clients): it builds on the parts, never on cmd/, testnet/, bench/ or e2e/",
	"e2e":       "the end-to-end tests drive the system through systest and the SDK (and bench/'s load), never cmd/ or testnet/",
}

func top(pkg string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

func allowed(from, to string) bool {
	if from == to || shared[to] {
		return true
	}
	for _, a := range layers[from] {
		if a == "*" || a == to {
			return !noImport[to] || from == to
		}
	}
	return false
}

func TestImportLayering(t *testing.T) {
	// Deps are transitive imports; test imports are checked too, so a test
	// cannot reach across the layering either.
	out, err := exec.Command("go", "list", "-e", "-f",
		`{{.ImportPath}}|{{join .Deps " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`,
		module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("unexpected go list line %q", line)
		}
		pkg := parts[0]
		from := top(pkg)
		if pkg == module {
			continue
		}
		if _, ok := layers[from]; !ok {
			t.Errorf("%s: top-level folder %q is not in the layering table (add it to STYLE.md and here)", pkg, from)
			continue
		}
		checked++
		for _, dep := range strings.Fields(parts[1]) {
			// A harness is test support too: it may use internal/.
			if to := top(dep); strings.HasPrefix(dep, module+"/") && shared[to] && from != to && !testOnly[pkg] {
				t.Errorf("%s imports %s outside its tests: %s/ is test support", pkg, dep, to)
			}
			if testOnly[dep] && !testOnly[pkg] && !strings.HasPrefix(pkg, dep+"/") {
				t.Errorf("%s imports %s outside its tests: %s is a test harness", pkg, dep, dep)
			}
		}
		for _, dep := range strings.Fields(parts[1] + " " + parts[2]) {
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			to := top(dep)
			if noImport[to] && from != to {
				t.Errorf("%s imports %s: nothing imports cmd/, testnet/ or e2e/", pkg, dep)
				continue
			}
			if !allowed(from, to) {
				t.Errorf("%s imports %s: %s/ may import only %v (%s)", pkg, dep, from, layers[from], why[from])
			}
		}
	}
	if checked == 0 {
		t.Fatal("no packages checked")
	}
}

func TestLayeringRuleCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"edge", "core", false},
		{"core", "edge", false},
		{"edge", "syncproto", true},
		{"crdt", "syncproto", false},
		{"syncproto", "crdt", true},
		{"client", "edge", false},
		{"testnet", "client", true},
		{"bench", "client", true},
		{"bench", "edge", false},
		{"bench", "core", false},
		{"system", "edge", true},
		{"system", "core", true},
		{"system", "testnet", false},
		{"system", "bench", false},
		{"edge", "system", false},
		{"cmd", "core", true},
		{"cmd", "testnet", false},
		{"core", "internal", true},
		{"crdt", "internal", true},
		{"internal", "core", false},
		{"edge", "blob", true},
		{"core", "blob", true},
		{"blob", "syncproto", false},
		{"blob", "core", false},
		{"systest", "system", true},
		{"systest", "core", true},
		{"systest", "bench", false},
		{"systest", "cmd", false},
		{"e2e", "systest", true},
		{"e2e", "bench", true},
		{"e2e", "testnet", false},
		{"e2e", "cmd", false},
		{"cmd", "systest", true},
		{"cmd", "e2e", false},
		{"bench", "systest", false},
		{"system", "systest", false},
		{"core", "systest", false},
	} {
		if got := allowed(tc.from, tc.to); got != tc.ok {
			t.Errorf("allowed(%s -> %s) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
}
