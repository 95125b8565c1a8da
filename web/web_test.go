package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// The vendored libraries are the versions package-lock.json pins, byte for
// byte as test/vendor.mjs copied them (which, with node_modules, checks the
// copies against the npm files themselves: TestWebVendor in cmd/parley).
func TestVendoredMatchLock(t *testing.T) {
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	var manifest struct {
		Files map[string]struct {
			Package, Version, SHA256 string
		} `json:"files"`
	}
	readJSON(t, "package-lock.json", &lock)
	readJSON(t, "app/vendor/VENDOR.json", &manifest)
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, "package.json", &pkg)
	for name, want := range map[string]string{"preact": "11.2.0", "htm": "3.1.1", "@preact/signals": "2.11.4"} {
		if pkg.Dependencies[name] != want {
			t.Errorf("package.json pins %s %q, want %q", name, pkg.Dependencies[name], want)
		}
	}
	if len(manifest.Files) == 0 {
		t.Fatal("app/vendor/VENDOR.json lists no files")
	}
	for name, f := range manifest.Files {
		if got := lock.Packages["node_modules/"+f.Package].Version; got != f.Version {
			t.Errorf("app/vendor/%s is %s %s; package-lock.json pins %q", name, f.Package, f.Version, got)
		}
		b, err := os.ReadFile("app/vendor/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("app/vendor/%s was changed by hand (run node test/vendor.mjs --write)", name)
		}
	}
	entries, err := os.ReadDir("app/vendor")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := manifest.Files[e.Name()]; !ok && e.Name() != "VENDOR.json" {
			t.Errorf("app/vendor/%s is not in VENDOR.json", e.Name())
		}
	}
}

// The embedded app has its page and the modules the page loads; the page
// has no inline script or style (the edge's CSP would refuse them).
func TestApp(t *testing.T) {
	index, err := fs.ReadFile(App(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(index)
	for _, bad := range []string{"<script>", "style=", "<style", "onclick", "onload"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html has inline %q", bad)
		}
	}
	for _, name := range []string{"parley.js", "rest.js", "app/main.js", "app/style.css", "app/vendor/preact.mjs"} {
		if _, err := fs.Stat(App(), name); err != nil {
			t.Errorf("the app has no %s: %v", name, err)
		}
		if !strings.Contains(page, name) && strings.HasPrefix(name, "app/m") {
			t.Errorf("index.html does not load %s", name)
		}
	}
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
