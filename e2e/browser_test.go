//go:build unix

package e2e_test

// Browser tests: web/parley.js, the minimal browser client, in real
// headless Chromium (web/test/wt_browser.mjs through playwright-core)
// against a real serve system over WebTransport, trusting the edge's dev
// certificate only through serverCertificateHashes. They need node,
// Chromium and `npm ci --prefix web`; without them they skip, unless
// PARLEY_REQUIRE_BROWSER=1 (CI) makes that a failure.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const defaultChromium = "/usr/bin/chromium"

// needWeb returns node and the web/ folder, or skips the test when a tool
// is missing (fails with PARLEY_REQUIRE_BROWSER=1). withBrowser also needs
// Chromium and playwright-core.
func needWeb(t *testing.T, withBrowser bool) (node, web string) {
	t.Helper()
	web, err := filepath.Abs(filepath.Join("..", "web"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	node, err = exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (Node.js 20 or later)")
	} else if v, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output(); err != nil {
		missing = append(missing, "a node that runs ("+err.Error()+")")
	} else if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); major < 20 {
		missing = append(missing, "Node.js 20 or later (have "+strings.TrimSpace(string(v))+")")
	}
	if withBrowser {
		chromium := cmp.Or(os.Getenv("PARLEY_CHROMIUM"), defaultChromium)
		if _, err := os.Stat(chromium); err != nil {
			missing = append(missing, chromium+" (apt-get install chromium)")
		}
		if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core", "package.json")); err != nil {
			missing = append(missing, "web/node_modules/playwright-core (npm ci --prefix web)")
		}
	}
	if len(missing) > 0 {
		msg := "needs " + strings.Join(missing, ", ")
		if os.Getenv("PARLEY_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + "; PARLEY_REQUIRE_BROWSER=1 makes this a failure rather than a skip")
		}
		t.Skip(msg + "; skipped (CI installs them and sets PARLEY_REQUIRE_BROWSER=1)")
	}
	return node, web
}

// startNode runs node with args in web, ended (with its whole process
// group: Chromium and its helpers) when ctx ends.
func startNode(ctx context.Context, node, web string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = web
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// The codec of parley.js against the Go side's golden frames, and its
// Client against a scripted edge (node's test runner, web/test/codec.test.mjs
// and client.test.mjs; no browser needed).
func TestWebClientCodec(t *testing.T) {
	node, web := needWeb(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := startNode(ctx, node, web, nil, "--test", "--test-reporter=spec", "test/codec.test.mjs", "test/client.test.mjs", "test/search.test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test web/test/: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// browserEvent is one line of wt_browser.mjs's output.
type browserEvent struct {
	Event         string   `json:"event"`
	MS            int64    `json:"ms"`
	Error         string   `json:"error"`
	OK            bool     `json:"ok"`
	UserAgent     string   `json:"userAgent"`
	SecureContext bool     `json:"secureContext"`
	FetchedHashes []string `json:"fetchedHashes"`
	Welcome       struct {
		UserID   string `json:"userId"`
		DeviceID string `json:"deviceId"`
		Version  int    `json:"version"`
	} `json:"welcome"`
	Ack struct {
		ConvID      string `json:"convId"`
		Seq         jsU64  `json:"seq"`
		MsgID       string `json:"msgId"`
		ClientMsgID string `json:"clientMsgId"`
		TSUnixMS    int64  `json:"tsUnixMs"`
	} `json:"ack"`
	Received struct {
		ConvID         string `json:"convId"`
		Seq            jsU64  `json:"seq"`
		MsgID          string `json:"msgId"`
		SenderUserID   string `json:"senderUserId"`
		SenderDeviceID string `json:"senderDeviceId"`
		Text           string `json:"text"`
	} `json:"received"`
	Refused struct {
		WrongHash string `json:"wrongHash"`
		NoHash    string `json:"noHash"`
	} `json:"refused"`
	Typing *struct {
		ConvID string `json:"convId"`
		UserID string `json:"userId"`
		Typing bool   `json:"typing"`
	} `json:"typing"`
	Steps map[string]int64 `json:"steps"`
}

// jsU64 is a uint64 from parley.js: a JSON number, or a string for a
// BigInt beyond 2^53.
type jsU64 uint64

func (v *jsU64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*v = jsU64(n)
	return err
}

// A browser opens a WebTransport session to the edge, pinning the dev
// certificate by hash, and exchanges messages with a Go SDK device.
func TestBrowserWebTransport(t *testing.T) {
	node, web := needWeb(t, true)
	began := time.Now()
	s := startTestSystem(t, "", noCPUShedding)
	anaRC, anaS := s.User(t, "acme", "ana") // in the browser
	boRC, boS := s.User(t, "acme", "bo")    // a Go device over WebSocket
	g, err := anaRC.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "browser", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	bo := s.Device(t, "ws", boRC, boS, nil)
	var hashes []string
	for _, h := range s.edge.CertHashes() {
		hashes = append(hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	if len(hashes) == 0 {
		t.Fatal("the edge publishes no certificate hashes")
	}
	token, _ := anaRC.Tokens()
	const sent, reply = "hello from chromium", "hello back from go"

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := startNode(ctx, node, web, []string{
		"PARLEY_WT_URL=https://" + s.edge.UDPAddr().String() + "/v1/wt",
		"PARLEY_CERT_HASHES=" + strings.Join(hashes, ","),
		"PARLEY_CERT_HASHES_URL=" + s.base + "/.well-known/parley/cert-hashes",
		"PARLEY_TOKEN=" + token,
		"PARLEY_DEVICE_ID=" + anaS.Device.ID,
		"PARLEY_CONV_ID=" + g.ID,
		"PARLEY_SEND_TEXT=" + sent,
		"PARLEY_EXPECT_TEXT=" + reply,
		"PARLEY_TIMEOUT_MS=90000",
	}, "test/wt_browser.mjs")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan browserEvent, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			t.Logf("browser: %s", sc.Bytes())
			var ev browserEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = browserEvent{Event: "error", Error: "unparsable output: " + err.Error()}
			}
			events <- ev
		}
	}()
	var exitErr error
	exited := false
	wait := func() {
		if !exited {
			for range events { // Wait needs stdout read to the end
			}
			exitErr = cmd.Wait()
			exited = true
		}
	}
	t.Cleanup(func() {
		cancel()
		wait()
		if t.Failed() || stderr.Len() > 0 {
			t.Logf("wt_browser.mjs exit: %v; stderr:\n%s", exitErr, stderr.Bytes())
		}
	})

	// The browser's message reaches bo's Go device.
	var result *browserEvent
	var fromBrowser *syncpb.Message
	for fromBrowser == nil {
		for _, m := range bo.Box.Get(g.ID) {
			if m.Kind == syncpb.MessageKind_MESSAGE_KIND_USER && m.SenderDeviceId == anaS.Device.ID && string(m.Body) == sent {
				fromBrowser = m
			}
		}
		if fromBrowser != nil {
			break
		}
		select {
		case <-bo.Box.Changed():
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the browser script ended before bo got its message")
			}
			if ev.Event == "error" {
				t.Fatalf("browser: %s", ev.Error)
			}
		case <-ctx.Done():
			t.Fatal("bo did not get the browser's message in time")
		}
	}

	// The browser's typing datagrams reach the edge.
	for deadline := time.Now().Add(30 * time.Second); s.edge.TypingStats().Datagrams == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no typing datagram from the browser in 30s: %+v", s.edge.TypingStats())
		}
		time.Sleep(10 * time.Millisecond) // polling
	}
	// bo types (over WebSocket; the edge pushes it to the browser as a
	// datagram) and answers; the browser reports both and exits.
	if err := bo.C.Typing(ctx, g.ID, true); err != nil {
		t.Fatalf("bo's typing: %v", err)
	}
	replyAck, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: []byte(reply)})
	if err != nil {
		t.Fatalf("bo's reply: %v", err)
	}
	for ev := range events {
		switch ev.Event {
		case "error":
			t.Fatalf("browser: %s", ev.Error)
		case "result":
			result = &ev
		}
	}
	wait()
	if exitErr != nil {
		t.Fatalf("wt_browser.mjs: %v", exitErr)
	}
	if result == nil || !result.OK {
		t.Fatal("wt_browser.mjs printed no result")
	}

	r := result
	if !r.SecureContext {
		t.Error("the page was not a secure context")
	}
	if !slices.Equal(r.FetchedHashes, hashes) {
		t.Errorf("the page fetched hashes %v from the edge, want %v", r.FetchedHashes, hashes)
	}
	if r.Refused.WrongHash == "" || r.Refused.NoHash == "" {
		t.Errorf("the browser accepted the edge without the right pin: %+v (want both refused)", r.Refused)
	}
	if r.Welcome.UserID != anaS.User.ID || r.Welcome.DeviceID != anaS.Device.ID || r.Welcome.Version != 1 {
		t.Errorf("welcome %+v, want user %s device %s version 1", r.Welcome, anaS.User.ID, anaS.Device.ID)
	}
	if r.Ack.Seq == 0 || uint64(r.Ack.Seq) != fromBrowser.Seq || r.Ack.MsgID != fromBrowser.MsgId ||
		r.Ack.ConvID != g.ID || r.Ack.ClientMsgID != fromBrowser.ClientMsgId || r.Ack.TSUnixMS != fromBrowser.TsUnixMs {
		t.Errorf("browser's ack %+v; bo got seq %d msg %s client_msg_id %s ts %d",
			r.Ack, fromBrowser.Seq, fromBrowser.MsgId, fromBrowser.ClientMsgId, fromBrowser.TsUnixMs)
	}
	got := r.Received
	if got.Text != reply || got.ConvID != g.ID || uint64(got.Seq) != replyAck.Seq || got.MsgID != replyAck.MsgId ||
		got.SenderUserID != boS.User.ID || got.SenderDeviceID != boS.Device.ID {
		t.Errorf("browser received %+v; bo sent seq %d msg %s as %s/%s", got, replyAck.Seq, replyAck.MsgId, boS.User.ID, boS.Device.ID)
	}
	// Typing both ways over WebTransport datagrams.
	if r.Typing == nil || r.Typing.UserID != boS.User.ID || r.Typing.ConvID != g.ID || !r.Typing.Typing {
		t.Errorf("the browser saw typing %+v, want bo's in %s", r.Typing, g.ID)
	}
	if st := s.edge.TypingStats(); st.Datagrams == 0 || st.Malformed != 0 || st.SentAsDgram == 0 {
		t.Errorf("edge typing stats %+v: want the browser's datagram in and bo's out, none malformed", st)
	}
	t.Logf("%s; steps in the page (ms): %v; test took %v", r.UserAgent, r.Steps, time.Since(began).Round(time.Millisecond))
}
