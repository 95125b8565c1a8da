package bench

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestTransport(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-senders", "4"}, ""},
		{[]string{"-transport", "ws", "-self"}, "ws"},
		{[]string{"-self", "--transport=ws"}, "ws"},
		{[]string{"-transport=http"}, "http"},
		{[]string{"-transport"}, ""},
		{[]string{"--", "-transport", "ws"}, ""},
	} {
		if got := Transport(tc.args); got != tc.want {
			t.Errorf("Transport(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestSDKFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		bad  string // in the error; "" for none
	}{
		{[]string{"-transport", "ws", "-self"}, ""},
		{[]string{"-transport", "ws", "-self", "-url", "http://x"}, "one of -url, -self and -region"},
		{[]string{"-transport", "ws", "-region", "-url", "http://x"}, "one of -url, -self and -region"},
		{[]string{"-transport", "ws", "-region", "-self"}, "one of -url, -self and -region"},
		{[]string{"-transport", "quic", "-region"}, ""},
		{[]string{"-transport", "ws", "-region", "-region-edges", "0"}, "-region-edges"},
		{[]string{"-transport", "quic", "-self"}, ""},
		{[]string{"-transport", "smoke"}, "want http, ws, quic or wt"},
		{[]string{"-transport", "ws", "-group-size", "30"}, "-group-size"},
		{[]string{"-transport", "ws", "-clients", "3", "-group-size", "2", "-convs", "4"}, "1:1 pairs"},
		{[]string{"-transport", "ws", "-url", "localhost:8080"}, "-url"},
		{[]string{"-transport", "ws", "-body", "8"}, "-body"},
	} {
		var cfg SDKConfig
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		cfg.AddFlags(fs)
		err := fs.Parse(tc.args)
		if err == nil {
			err = cfg.Validate()
		}
		cfg = cfg.withDefaults()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%q: error %v, want one about %q", tc.args, err, tc.bad)
		case tc.bad == "" && cfg.Convs != 4: // 20 clients in groups of 5
			t.Errorf("%q: %d conversations by default, want 4", tc.args, cfg.Convs)
		}
	}
}

func TestPlanConvs(t *testing.T) {
	for _, tc := range []struct{ n, m, g int }{
		{2, 1, 2}, {5, 3, 2}, {5, 10, 2}, {200, 40, 5}, {7, 3, 3}, {10, 25, 4}, {4, 1, 4},
	} {
		ms, err := planConvs(tc.n, tc.m, tc.g, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
			continue
		}
		if len(ms) != tc.m {
			t.Errorf("%+v: %d conversations", tc, len(ms))
		}
		in := map[int]bool{}
		pairs := map[[2]int]bool{}
		for _, c := range ms {
			seen := map[int]bool{}
			for _, u := range c {
				if u < 0 || u >= tc.n || seen[u] {
					t.Errorf("%+v: bad members %v", tc, c)
				}
				seen[u], in[u] = true, true
			}
			if tc.g == 2 {
				p := [2]int{min(c[0], c[1]), max(c[0], c[1])}
				if pairs[p] {
					t.Errorf("%+v: pair %v twice", tc, p)
				}
				pairs[p] = true
			}
		}
		if tc.m*tc.g >= tc.n && len(in) != tc.n {
			t.Errorf("%+v: %d of %d clients in a conversation", tc, len(in), tc.n)
		}
	}
	if _, err := planConvs(3, 1, 4, rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Error("groups larger than the clients were planned")
	}
}

// The modes that run a system in this process need the caller's hooks.
func TestInProcessModesNeedHooks(t *testing.T) {
	var out bytes.Buffer
	sdk := SDKConfig{Transport: "ws", Self: true, Clients: 2, GroupSize: 2, IdleUsers: 1, BodyBytes: 100, Duration: time.Second}
	if err := RunSDK(t.Context(), sdk, &out, &out); !errors.Is(err, errNoStart) {
		t.Errorf("RunSDK -self without Start: %v, want errNoStart", err)
	}
	for _, spawn := range []string{"serve", "region3"} {
		h := HTTPConfig{Spawn: spawn, Senders: 1, Convs: 1, BodyBytes: 1, Duration: time.Second, DataDir: t.TempDir()}
		if err := RunHTTP(t.Context(), h, &out, &out); !errors.Is(err, errNoStart) {
			t.Errorf("RunHTTP -spawn %s without hooks: %v, want errNoStart", spawn, err)
		}
	}
	if err := (HTTPConfig{Spawn: "region5", Senders: 1, Convs: 1, BodyBytes: 1, Duration: time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "-spawn") {
		t.Errorf("-spawn region5: %v", err)
	}
}
