//go:build unix

package e2e_test

// Browser tests of the web app (web/, served by the edge at /): users sign
// up, chat, go offline and reload in real headless Chromium, driven by
// web/test/app_browser.mjs (one JSON command a line), against a serve
// system with Go SDK devices in the same conversations. Like
// browser_test.go they skip without node, Chromium and `npm ci --prefix
// web`, unless PARLEY_REQUIRE_BROWSER=1.
//
// Screenshots of the main views (desktop and phone, light and dark) go to
// $PARLEY_ARTIFACTS/webapp (default: a webapp-screenshots folder under the
// OS's temp dir); with PARLEY_UPDATE_SCREENSHOTS=1 they are copied to
// docs/screenshots/ too.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

// appDriver is one app_browser.mjs process.
type appDriver struct {
	t      *testing.T
	in     io.WriteCloser
	out    *bufio.Scanner
	mu     sync.Mutex
	nextID int
	stderr *bytes.Buffer
}

func startAppDriver(t *testing.T) *appDriver {
	t.Helper()
	node, web := needWeb(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	cmd := startNode(ctx, node, web, nil, "test/app_browser.mjs")
	d := &appDriver{t: t, stderr: &bytes.Buffer{}}
	cmd.Stderr = d.stderr
	var err error
	if d.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewScanner(stdout)
	d.out.Buffer(nil, 16<<20)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cancel()
			<-done
		}
		cancel()
		if t.Failed() && d.stderr.Len() > 0 {
			t.Logf("app_browser.mjs stderr:\n%s", d.stderr.Bytes())
		}
	})
	return d
}

// do runs one command and returns its value; a failed command fails the test.
func (d *appDriver) do(cmd string, args map[string]any) json.RawMessage {
	d.t.Helper()
	v, err := d.try(cmd, args)
	if err != nil {
		d.t.Fatalf("browser %s %v: %v", cmd, brief(args), err)
	}
	return v
}

func (d *appDriver) try(cmd string, args map[string]any) (json.RawMessage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	msg := map[string]any{"id": d.nextID, "cmd": cmd}
	for k, v := range args {
		msg[k] = v
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if !d.out.Scan() {
		return nil, fmt.Errorf("the driver ended: %v; stderr: %s", d.out.Err(), d.stderr.Bytes())
	}
	var r struct {
		ID    int             `json:"id"`
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(d.out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("unparsable answer %q: %w", d.out.Bytes(), err)
	}
	if r.ID != d.nextID {
		return nil, fmt.Errorf("answer %d to command %d", r.ID, d.nextID)
	}
	if !r.OK {
		return nil, fmt.Errorf("%s", r.Error)
	}
	return r.Value, nil
}

func brief(args map[string]any) string {
	s := fmt.Sprint(args)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// appPage is one page of the app in its own browser context.
type appPage struct {
	d    *appDriver
	name string
}

func (d *appDriver) page(name, browser string, opts map[string]any) *appPage {
	d.t.Helper()
	args := map[string]any{"name": name, "browser": browser}
	for k, v := range opts {
		args[k] = v
	}
	d.do("page", args)
	return &appPage{d: d, name: name}
}

func (p *appPage) do(cmd string, args map[string]any) json.RawMessage {
	p.d.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	args["page"] = p.name
	return p.d.do(cmd, args)
}

// waitFor waits until fn(arg), a JavaScript function's text, is truthy in
// the page, and returns its value; on a timeout it fails with what the
// page shows.
func (p *appPage) waitFor(what, fn string, arg any) json.RawMessage {
	p.d.t.Helper()
	v, err := p.d.try("waitFor", map[string]any{"page": p.name, "fn": fn, "arg": arg, "timeout": 30_000})
	if err != nil {
		state, _ := p.d.try("eval", map[string]any{"page": p.name, "fn": jsDebugState})
		logs, _ := p.d.try("logs", map[string]any{"page": p.name})
		p.d.t.Fatalf("%s: waiting for %s: %v\npage state: %s\nconsole: %s", p.name, what, err, state, logs)
	}
	return v
}

func (p *appPage) eval(fn string, arg any) json.RawMessage {
	p.d.t.Helper()
	return p.do("eval", map[string]any{"fn": fn, "arg": arg})
}

func (p *appPage) click(sel string) { p.d.t.Helper(); p.do("click", map[string]any{"selector": sel}) }
func (p *appPage) fill(sel, value string) {
	p.d.t.Helper()
	p.do("fill", map[string]any{"selector": sel, "value": value})
}
func (p *appPage) press(sel, key string) {
	p.d.t.Helper()
	p.do("press", map[string]any{"selector": sel, "key": key})
}
func (p *appPage) shot(path string) { p.d.t.Helper(); p.do("screenshot", map[string]any{"path": path}) }
func (p *appPage) offline(off bool) { p.d.t.Helper(); p.do("offline", map[string]any{"offline": off}) }
func (p *appPage) scheme(scheme string) {
	p.d.t.Helper()
	p.do("colorScheme", map[string]any{"colorScheme": scheme})
}
func (p *appPage) viewport(width, height int) {
	p.d.t.Helper()
	p.do("viewport", map[string]any{"width": width, "height": height})
}

// JavaScript run in the pages.
const (
	jsDebugState = `() => JSON.stringify({url: location.href, title: document.title,
		status: window.parleyStore?.status, transport: window.parleyStore?.client?.transport,
		thread: [...document.querySelectorAll('.thread li.msg')].map((li) => li.querySelector('.body').textContent + ' ' + li.dataset.state),
		typing: document.querySelector('.typing')?.textContent, body: document.body.innerText.slice(0, 400)})`
	jsOnline = `() => window.parleyStore?.status.state === 'online' && window.parleyStore.client.transport`
	// jsThread is the texts of the open conversation's messages, in order.
	jsThread = `() => [...document.querySelectorAll('.thread li.msg')].map((li) => li.querySelector('.body').textContent)`
	// jsThreadIs is true once the open conversation shows exactly want.
	jsThreadIs = `(want) => JSON.stringify([...document.querySelectorAll('.thread li.msg')].map((li) => li.querySelector('.body').textContent)) === JSON.stringify(want)`
	// jsStateOf is the tick of the own message with text arg.
	jsStateIs  = `([text, state]) => [...document.querySelectorAll('.thread li.msg.mine')].some((li) => li.querySelector('.body').textContent === text && li.dataset.state === state)`
	jsTyping   = `(want) => (document.querySelector('.typing')?.textContent ?? '') .includes(want) === true`
	jsNoTyping = `() => (document.querySelector('.typing')?.textContent ?? '') === ''`
	jsPresence = `(want) => document.querySelector('.main .head [data-online]')?.dataset.online === want`
	jsConvLink = `(title) => [...document.querySelectorAll('a.conv')].some((a) => a.querySelector('.conv-title').textContent === title)`
	jsUnread   = `(title) => { const a = [...document.querySelectorAll('a.conv')].find((a) => a.querySelector('.conv-title').textContent === title); return a ? Number(a.querySelector('.badge')?.textContent ?? 0) : -1; }`
)

// signUp signs a user up through the page (creating or joining workspace).
func (p *appPage) signUp(base, workspace, name string) {
	p.d.t.Helper()
	p.do("goto", map[string]any{"url": base + "/"})
	p.click("text=New here? Sign up")
	p.fill("input[name=workspace]", workspace)
	p.fill("input[name=username]", name)
	p.fill("input[name=password]", testPassword)
	p.click("form.card button.primary")
	p.waitFor("the session", jsOnline, nil)
}

// openConv opens the conversation titled title from the list.
func (p *appPage) openConv(title string) {
	p.d.t.Helper()
	p.waitFor("conversation "+title+" in the list", jsConvLink, title)
	p.eval(`(title) => [...document.querySelectorAll('a.conv')].find((a) => a.querySelector('.conv-title').textContent === title).click()`, title)
	p.waitFor("conversation "+title+" open", `(title) => document.querySelector('.main .head h2')?.textContent.trim() === title`, title)
}

// say types text in the open conversation and sends it with Enter.
func (p *appPage) say(text string) {
	p.d.t.Helper()
	p.fill("textarea[aria-label=Message]", text)
	p.press("textarea[aria-label=Message]", "Enter")
}

func (p *appPage) thread() []string {
	p.d.t.Helper()
	var got []string
	if err := json.Unmarshal(p.eval(jsThread, nil), &got); err != nil {
		p.d.t.Fatal(err)
	}
	return got
}

// threadIs waits until the open conversation shows exactly want, in order.
func (p *appPage) threadIs(want []string) {
	p.d.t.Helper()
	p.waitFor(fmt.Sprintf("messages %q", want), jsThreadIs, want)
}

// webTest is a system, a driver with one browser, and the screenshot dir.
type webTest struct {
	s    *testSystem
	d    *appDriver
	shot string
}

func newWebTest(t *testing.T, mods ...func(*system.Config)) *webTest {
	t.Helper()
	d := startAppDriver(t)
	s := startTestSystem(t, "", func(c *system.Config) {
		noCPUShedding(c)
		for _, m := range mods {
			m(c)
		}
	})
	d.do("launch", map[string]any{"name": "chromium"})
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "webapp-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &webTest{s: s, d: d, shot: dir}
}

// chat runs the chat test: ana and bo in browsers, cy a Go SDK device over
// WebSocket, in a 1:1 (ana, bo) and a group (all three), both ways; each
// sees every message once and in order, ticks turn read, typing and
// presence show and clear. transport is what the browsers must use.
func (w *webTest) chat(t *testing.T, transport string, pageOpts map[string]any) (ana, bo *appPage, cy *wsDevice) {
	s, d := w.s, w.d
	ctx := t.Context()
	ana = d.page("ana", "chromium", pageOpts)
	ana.signUp(s.base, "acme", "ana") // creates acme
	cyRC, cyS := s.User(t, "acme", "cy")
	cy = s.Device(t, "ws", cyRC, cyS, nil)
	bo = d.page("bo", "chromium", pageOpts)
	bo.signUp(s.base, "acme", "bo") // joins it
	for _, p := range []*appPage{ana, bo} {
		var got string
		if err := json.Unmarshal(p.waitFor("online", jsOnline, nil), &got); err != nil || got != transport {
			t.Fatalf("%s's session is over %q, want %s", p.name, got, transport)
		}
	}

	// ana starts a 1:1 with bo, and a group with bo and cy.
	ana.click("button[aria-label='New conversation']")
	ana.fill("dialog input[name=usernames]", "bo")
	ana.click("dialog button.primary")
	ana.waitFor("the 1:1 open", `() => document.querySelector('.main .head h2')?.textContent.trim() === 'bo'`, nil)
	ana.click("button[aria-label='New conversation']")
	ana.click("dialog [role=tab]:has-text('Group')")
	ana.fill("dialog input[name=title]", "team")
	ana.fill("dialog input[name=usernames]", "bo, cy")
	ana.click("dialog button.primary")
	ana.waitFor("the group open", `() => document.querySelector('.main .head h2')?.textContent.trim() === 'team'`, nil)

	// The 1:1, both ways; bo reads, so ana's message turns read.
	ana.openConv("bo")
	ana.say("hi bo")
	bo.openConv("ana")
	bo.threadIs([]string{"hi bo"})
	ana.waitFor("hi bo read", jsStateIs, []string{"hi bo", "read"})
	bo.say("hi ana")
	ana.threadIs([]string{"hi bo", "hi ana"})
	bo.waitFor("hi ana read", jsStateIs, []string{"hi ana", "read"})
	// Presence: each sees the other online.
	ana.waitFor("bo online", jsPresence, "true")
	bo.waitFor("ana online", jsPresence, "true")

	// The group: bo learns of it with ana's first message; bo types and
	// ana sees it, cy (Go) types and ana sees it; then the others send.
	ana.openConv("team")
	ana.say("g1 from ana")
	bo.openConv("team")
	bo.threadIs([]string{"g1 from ana"})
	bo.fill("textarea[aria-label=Message]", "typing…")
	ana.waitFor("bo typing", jsTyping, "bo is typing")
	bo.fill("textarea[aria-label=Message]", "")
	if err := cy.C.Typing(ctx, groupID(t, ana), true); err != nil {
		t.Fatalf("cy's typing: %v", err)
	}
	ana.waitFor("cy typing", jsTyping, "cy")
	bo.say("g2 from bo")
	ana.waitFor("bo's typing cleared by his send", `() => !(document.querySelector('.typing')?.textContent ?? '').includes('bo')`, nil)
	ack, err := cy.C.Send(ctx, &syncpb.SendRequest{ConvId: groupID(t, ana), Body: []byte("g3 from cy")})
	if err != nil {
		t.Fatalf("cy's send: %v", err)
	}
	if err := cy.C.Typing(ctx, groupID(t, ana), false); err != nil {
		t.Fatalf("cy's typing: %v", err)
	}
	want := []string{"g1 from ana", "g2 from bo", "g3 from cy"}
	ana.threadIs(want)
	bo.threadIs(want)
	ana.waitFor("typing cleared", jsNoTyping, nil)
	// cy's Go device got the browsers' messages once, in order.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var got []string
		for _, m := range cy.Box.Get(groupID(t, ana)) {
			if m.Kind == syncpb.MessageKind_MESSAGE_KIND_USER {
				got = append(got, string(m.Body))
			}
		}
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cy's device got %q, want %q", got, want)
		}
		select {
		case <-cy.Box.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	// cy reads: ana's g1 turns read (bo's page read it already).
	if err := cy.C.Receipt(ctx, groupID(t, ana), ack.Seq, syncpb.ReceiptType_RECEIPT_TYPE_READ); err != nil {
		t.Fatalf("cy's read receipt: %v", err)
	}
	ana.waitFor("g1 read by both", jsStateIs, []string{"g1 from ana", "read"})
	bo.waitFor("g2 read by both", jsStateIs, []string{"g2 from bo", "read"})
	// Nothing shows twice, a moment later either.
	for _, p := range []*appPage{ana, bo} {
		if got := p.thread(); !slices.Equal(got, want) {
			t.Errorf("%s shows %q, want %q", p.name, got, want)
		}
	}
	return ana, bo, cy
}

// groupID is the id of the conversation open in p.
func groupID(t *testing.T, p *appPage) string {
	t.Helper()
	var id string
	if err := json.Unmarshal(p.eval(`() => window.parleyStore.current`, nil), &id); err != nil || id == "" {
		t.Fatalf("no conversation open in %s: %v", p.name, err)
	}
	return id
}

// The chat over WebTransport (the dev certificate pinned by hash), with
// presence clearing when a browser goes, and screenshots of the main views.
func TestWebAppChat(t *testing.T) {
	w := newWebTest(t)
	ana, bo, cy := w.chat(t, "webtransport", nil)

	// Screenshots: the group on a desktop and a phone, light and dark; the
	// list on a phone; the sign-in page. cy writes to ana in a 1:1 first
	// (an unread count in the list), and bo is typing.
	ctx := t.Context()
	dm, err := cy.Rest.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"ana"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"lunch at 12?", "the usual place 🍜"} {
		if _, err := cy.C.Send(ctx, &syncpb.SendRequest{ConvId: dm.ID, Body: []byte(text)}); err != nil {
			t.Fatal(err)
		}
	}
	ana.openConv("team")
	ana.say("the deploy is done.\nrelease notes are in the usual place")
	bo.threadIs([]string{"g1 from ana", "g2 from bo", "g3 from cy", "the deploy is done.\nrelease notes are in the usual place"})
	ana.waitFor("cy's unread", "(t) => ("+jsUnread+")(t) === 2", "cy")
	var shots []string
	snap := func(p *appPage, name string) {
		path := filepath.Join(w.shot, name+".png")
		p.shot(path)
		shots = append(shots, path)
	}
	// bo types for the first screenshots (an indicator lasts 5 s unless he
	// types on; the later ones may show it or not).
	// Indicators are best effort (the edge drops some by design): type
	// again until one shows.
	for i := 0; ; i++ {
		bo.fill("textarea[aria-label=Message]", "")
		bo.fill("textarea[aria-label=Message]", strings.Repeat("nice ", i+1))
		if _, err := w.d.try("waitFor", map[string]any{"page": "ana", "fn": jsTyping, "arg": "bo is typing", "timeout": 3_000}); err == nil {
			break
		} else if i == 5 {
			t.Fatalf("ana never saw bo typing: %v", err)
		} else {
			t.Logf("bo's typing indicator did not show in 3s (%v); typing again", err)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		ana.scheme(scheme)
		ana.viewport(1280, 800)
		snap(ana, "desktop-"+scheme)
		ana.viewport(390, 780)
		snap(ana, "phone-conversation-"+scheme)
		ana.press("textarea[aria-label=Message]", "Escape") // Esc closes the conversation: the list
		ana.waitFor("the list", `() => !document.querySelector('.main .head')`, nil)
		snap(ana, "phone-list-"+scheme)
		ana.openConv("team")
	}
	login := w.d.page("login", "chromium", map[string]any{"width": 1280, "height": 800})
	login.do("goto", map[string]any{"url": w.s.base + "/"})
	login.waitFor("the log-in form", `() => !!document.querySelector('form.card')`, nil)
	snap(login, "login-light")
	t.Logf("screenshots: %s", strings.Join(shots, " "))
	if os.Getenv("PARLEY_UPDATE_SCREENSHOTS") == "1" {
		for _, p := range shots {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", filepath.Base(p)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Shift+Enter is a new line, not a send.
	ana.viewport(1280, 800)
	ana.openConv("team")
	ana.fill("textarea[aria-label=Message]", "two")
	ana.press("textarea[aria-label=Message]", "Shift+Enter")
	ana.waitFor("a new line", `() => document.querySelector('textarea[aria-label=Message]').value === 'two\n'`, nil)
	ana.fill("textarea[aria-label=Message]", "")

	// Members: ana removes cy and adds him back; bo leaves.
	ana.click("button[aria-label=Members]")
	ana.click("button[aria-label='Remove cy']")
	ana.waitFor("cy removed", `() => document.querySelector('.main .head .sub')?.textContent === '2 members' && [...document.querySelectorAll('.thread .system')].some((li) => li.textContent === 'ana removed cy')`, nil)
	ana.fill("input[aria-label='Add members by username']", "cy")
	ana.click(".panel button.primary")
	ana.waitFor("cy added", `() => document.querySelector('.main .head .sub')?.textContent === '3 members' && [...document.querySelectorAll('.thread .system')].some((li) => li.textContent === 'ana added cy')`, nil)
	bo.openConv("team")
	bo.click("button[aria-label=Members]")
	bo.click("text=Leave group")
	bo.waitFor("team gone from bo's list", "(title) => !("+jsConvLink+")(title)", "team")
	ana.waitFor("bo left", `() => document.querySelector('.main .head .sub')?.textContent === '2 members' && [...document.querySelectorAll('.thread .system')].some((li) => li.textContent === 'bo left')`, nil)

	// bo's browser goes away: ana sees him offline, with a last-seen time.
	ana.openConv("bo")
	ana.waitFor("bo online", jsPresence, "true")
	bo.do("close", nil)
	ana.waitFor("bo offline", jsPresence, "false")
	ana.waitFor("bo's last seen", `() => /last seen/.test(document.querySelector('.main .head .sub')?.textContent ?? '')`, nil)
}

// The same chat where WebTransport is unavailable (a browser without it)
// or blocked (its UDP packets dropped): the app falls back to WebSocket by
// itself.
func TestWebAppWebSocketFallback(t *testing.T) {
	t.Run("unavailable", func(t *testing.T) {
		w := newWebTest(t)
		w.chat(t, "websocket", map[string]any{"noWebTransport": true})
	})
	t.Run("blocked", func(t *testing.T) {
		hole, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hole.Close() })
		go func() { // read and drop
			buf := make([]byte, 2048)
			for {
				if _, _, err := hole.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		w := newWebTest(t)
		w.chat(t, "websocket", map[string]any{"blackholeUDP": hole.LocalAddr().(*net.UDPAddr).Port})
	})
}

// A browser whose network goes away while others send shows everything
// once and in order when it is back; a reload keeps the session; unread
// counts and the tab title follow.
func TestWebAppOfflineAndReload(t *testing.T) {
	w := newWebTest(t)
	s, ctx := w.s, t.Context()
	s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	bo := s.Device(t, "ws", boRC, boS, nil)
	dm, err := boRC.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"ana"}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	send := func(text string) {
		t.Helper()
		if _, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: dm.ID, Body: []byte(text)}); err != nil {
			t.Fatalf("bo's send: %v", err)
		}
		want = append(want, text)
	}
	// 60 messages before ana logs in: the newest page shows, the rest as
	// she scrolls up.
	for i := range 60 {
		send(fmt.Sprintf("before %02d", i+1))
	}
	ana := w.d.page("ana", "chromium", nil)
	ana.do("goto", map[string]any{"url": s.base + "/"})
	ana.fill("input[name=workspace]", "acme")
	ana.fill("input[name=username]", "ana")
	ana.fill("input[name=password]", testPassword)
	ana.click("form.card button.primary")
	ana.waitFor("the session", jsOnline, nil)
	ana.waitFor("bo's conversation", jsConvLink, "bo")
	ana.waitFor("60 unread", "(t) => ("+jsUnread+")(t) === 60", "bo")
	ana.waitFor("the tab title", `() => document.title === '(60) parley'`, nil)
	ana.openConv("bo")
	ana.threadIs(want[10:])
	ana.waitFor("read: no unread", "(t) => ("+jsUnread+")(t) === 0 && document.title === 'parley'", "bo")
	ana.eval(`() => { const el = document.querySelector('.thread'); el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }`, nil)
	ana.threadIs(want)

	// Offline: the session drops; bo sends 30 more; back online, all of
	// them show, once, in order.
	ana.offline(true)
	ana.waitFor("offline", `() => window.parleyStore.status.state !== 'online'`, nil)
	for i := range 30 {
		send(fmt.Sprintf("while away %02d", i+1))
	}
	// ana writes while offline: it shows as sending, then failed; a retry
	// once she is back sends it once (the same client_msg_id).
	ana.say("sent while away")
	ana.waitFor("sending", jsStateIs, []string{"sent while away", "sending"})
	ana.waitFor("failed", jsStateIs, []string{"sent while away", "failed"})
	ana.offline(false)
	ana.waitFor("back online", jsOnline, nil)
	ana.threadIs(append(slices.Clone(want), "sent while away"))
	ana.click("button[aria-label='Retry sending']")
	want = append(want, "sent while away")
	ana.threadIs(want)
	ana.waitFor("sent while away acknowledged", jsStateIs, []string{"sent while away", "sent"})
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := 0
		for _, m := range bo.Box.Get(dm.ID) {
			if string(m.Body) == "sent while away" {
				n++
			}
		}
		if n == 1 {
			break
		}
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("bo's device got ana's retried message %d times, want once", n)
		}
		select {
		case <-bo.Box.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}

	// A reload keeps the session (the refresh token in storage) and shows
	// the conversation again from history, once each.
	ana.do("reload", nil)
	ana.waitFor("online after the reload", jsOnline, nil)
	ana.waitFor("the conversation after the reload", `() => document.querySelector('.main .head h2')?.textContent.trim() === 'bo'`, nil)
	ana.threadIs(want[len(want)-50:])
	send("after the reload")
	ana.threadIs(want[len(want)-51:])
	for range 2 {
		ana.eval(`() => { const el = document.querySelector('.thread'); el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }`, nil)
		ana.waitFor("a page loaded", `() => !document.querySelector('.thread [role=status]')`, nil)
	}
	ana.threadIs(want)
	if got := ana.thread(); !slices.Equal(got, want) {
		t.Fatalf("ana shows %q, want %q", got, want)
	}
}

// The vendored Preact, htm and signals (web/app/vendor) are the npm files
// of the versions package-lock.json pins, as web/test/vendor.mjs copies
// them (web's own test checks the copies against VENDOR.json without node).
func TestWebVendor(t *testing.T) {
	node, web := needWeb(t, false)
	if _, err := os.Stat(filepath.Join(web, "node_modules", "preact", "package.json")); err != nil {
		msg := "needs web/node_modules (npm ci --prefix web)"
		if os.Getenv("PARLEY_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := startNode(ctx, node, web, nil, "test/vendor.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node test/vendor.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// Access tokens that last 6 s: the page's session hands the edge fresh
// ones (Reauth) and its /v1 calls refresh theirs, so it stays up on its
// first connection, and a reload after the access token expired still
// finds the session.
func TestWebAppTokenRefresh(t *testing.T) {
	w := newWebTest(t, func(c *system.Config) { c.Edge.Auth.AccessTTL = 6 * time.Second })
	s, ctx := w.s, t.Context()
	ana := w.d.page("ana", "chromium", nil)
	ana.signUp(s.base, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	bo := s.Device(t, "ws", boRC, boS, nil)
	time.Sleep(15 * time.Second) // two and a half access token lifetimes
	dm, err := boRC.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"ana"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: dm.ID, Body: []byte("still there?")}); err != nil {
		t.Fatal(err)
	}
	ana.openConv("bo")
	ana.threadIs([]string{"still there?"})
	ana.say("yes")
	ana.threadIs([]string{"still there?", "yes"})
	var conns int
	if err := json.Unmarshal(ana.eval(`() => window.parleyStore.client.connections`, nil), &conns); err != nil || conns != 1 {
		t.Errorf("the page connected %d times, want once (its session kept up by Reauth)", conns)
	}
	ana.do("reload", nil)
	ana.waitFor("online after the reload", jsOnline, nil)
	ana.threadIs([]string{"still there?", "yes"})
}

// Search: ana finds a word of an old message (not in the page the
// conversation opens with), sees it marked, clicks the hit and the
// conversation opens at that message, highlighted; a CJK query finds CJK
// text (the marks are UTF-8 byte ranges, the page's strings UTF-16).
func TestWebAppSearch(t *testing.T) {
	w := newWebTest(t)
	s, ctx := w.s, t.Context()
	anaRC, _ := s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	bo := s.Device(t, "ws", boRC, boS, nil)
	dm, err := boRC.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"ana"}})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"the quarterly report is ready", "我家在上海东边"}
	for i := range 60 {
		texts = append(texts, fmt.Sprintf("filler %02d", i+1))
	}
	seqs := map[string]uint64{}
	for _, text := range texts {
		ack, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: dm.ID, Body: []byte(text)})
		if err != nil {
			t.Fatal(err)
		}
		seqs[text] = ack.Seq
	}
	// Wait until the index has them (it trails the log).
	for deadline := time.Now().Add(30 * time.Second); ; {
		a, err1 := anaRC.Search(ctx, rest.SearchRequest{Query: "quarterly"})
		b, err2 := anaRC.Search(ctx, rest.SearchRequest{Query: "上海"})
		if err1 == nil && err2 == nil && len(a.Hits) == 1 && len(b.Hits) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not indexed in 30s: %v %v", err1, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}

	ana := w.d.page("ana", "chromium", nil)
	ana.do("goto", map[string]any{"url": s.base + "/"})
	ana.fill("input[name=workspace]", "acme")
	ana.fill("input[name=username]", "ana")
	ana.fill("input[name=password]", testPassword)
	ana.click("form.card button.primary")
	ana.waitFor("the session", jsOnline, nil)
	ana.waitFor("bo's conversation", jsConvLink, "bo")

	const jsHits = `() => [...document.querySelectorAll('.hits a.hit')].map((a) => ({
		conv: a.querySelector('.hit-conv').textContent, head: a.querySelector('.hit-head').textContent,
		snippet: a.querySelector('.snippet').textContent, marks: [...a.querySelectorAll('mark')].map((m) => m.textContent),
		seq: Number(a.dataset.seq)}))`
	type hit struct {
		Conv, Head, Snippet string
		Marks               []string
		Seq                 uint64
	}
	hits := func() []hit {
		var hs []hit
		if err := json.Unmarshal(ana.eval(jsHits, nil), &hs); err != nil {
			t.Fatal(err)
		}
		return hs
	}
	// "/" focuses the box.
	ana.press("body", "/")
	ana.waitFor("the search box focused", `() => document.activeElement?.getAttribute('aria-label') === 'Search messages'`, nil)
	ana.fill("input[aria-label='Search messages']", "quarterly")
	ana.waitFor("a hit", `() => document.querySelectorAll('.hits mark').length > 0`, nil)
	hs := hits()
	if len(hs) != 1 || hs[0].Conv != "bo" || hs[0].Snippet != "the quarterly report is ready" ||
		!slices.Equal(hs[0].Marks, []string{"quarterly"}) || hs[0].Seq != seqs[texts[0]] || !strings.Contains(hs[0].Head, "bo") {
		t.Fatalf("hits %+v", hs)
	}
	if v := ana.eval(`() => document.querySelector('.convs').hidden`, nil); string(v) != "true" {
		t.Errorf("the conversation list shows under the hits")
	}
	shot := filepath.Join(w.shot, "desktop-search-light.png")
	ana.shot(shot)
	// The hit opens the conversation at that message (60 newer ones: it is
	// read from history), highlighted and on screen.
	ana.click(".hits a.hit")
	ana.waitFor("the conversation open", `() => document.querySelector('.main .head h2')?.textContent.trim() === 'bo'`, nil)
	ana.waitFor("the message highlighted and on screen", `(seq) => {
		const li = document.querySelector('.thread li.msg.focused[data-seq="' + seq + '"]');
		if (!li) return false;
		const a = li.getBoundingClientRect(), b = document.querySelector('.thread').getBoundingClientRect();
		return a.top >= b.top && a.bottom <= b.bottom;
	}`, seqs[texts[0]])
	ana.waitFor("the highlight gone", `() => !document.querySelector('.thread li.msg.focused')`, nil)

	// Ctrl+K focuses the box again; a CJK query; the order toggle; Esc closes.
	ana.press("textarea[aria-label=Message]", "Control+k")
	ana.waitFor("the search box focused", `() => document.activeElement?.getAttribute('aria-label') === 'Search messages'`, nil)
	ana.fill("input[aria-label='Search messages']", "上海")
	ana.waitFor("the CJK hit", `() => [...document.querySelectorAll('.hits mark')].some((m) => m.textContent === '上海')`, nil)
	hs = hits()
	if len(hs) != 1 || hs[0].Snippet != "我家在上海东边" || !slices.Equal(hs[0].Marks, []string{"上海"}) {
		t.Fatalf("CJK hits %+v", hs)
	}
	ana.click("button[aria-pressed=false]:has-text('Relevance')")
	ana.waitFor("by relevance", `() => document.querySelector("button[aria-pressed=true]")?.textContent === 'Relevance' && document.querySelectorAll('.hits mark').length > 0`, nil)
	ana.press("input[aria-label='Search messages']", "Escape")
	ana.waitFor("search closed", `() => !document.querySelector('.hits') && !document.querySelector('.convs').hidden`, nil)
	// Esc in the box closed the search, not the conversation.
	ana.waitFor("the conversation still open", `() => document.querySelector('.main .head h2')?.textContent.trim() === 'bo'`, nil)

	// "More" pages with the cursor: the 60 fillers, 20 at a time.
	ana.fill("input[aria-label='Search messages']", "filler")
	ana.waitFor("the first page", `() => document.querySelectorAll('.hits a.hit').length === 20`, nil)
	ana.click(".hits button:has-text('More')")
	ana.waitFor("the second page", `() => document.querySelectorAll('.hits a.hit').length === 40`, nil)
	ana.click(".hits button:has-text('More')")
	ana.waitFor("the last page", `() => document.querySelectorAll('.hits a.hit').length === 60 && !document.querySelector('.hits button')`, nil)
	if n := len(hits()); n != 60 {
		t.Errorf("%d hits, want 60", n)
	}
	if os.Getenv("PARLEY_UPDATE_SCREENSHOTS") == "1" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", filepath.Base(shot)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Push: the app registers its service worker (/sw.js); a Web Push message
// (delivered through the DevTools protocol: Chromium cannot subscribe to
// a push service of the test's) shows a notification once, whatever the
// repeats of its push_id, and a "clear" with its tag closes it.
func TestWebAppPush(t *testing.T) {
	w := newWebTest(t)
	ana := w.d.page("ana", "chromium", map[string]any{"permissions": []string{"notifications"}})
	ana.signUp(w.s.base, "acme", "ana")
	ana.eval(`() => navigator.serviceWorker.ready.then(() => null)`, nil)
	ana.waitFor("the service worker active", `() => window.parleySW?.active?.scriptURL.endsWith('/sw.js')`, nil)
	ana.waitFor("the Notifications toggle", `() => document.querySelector('button[aria-label=Notifications]')?.getAttribute('aria-checked') === 'false'`, nil)
	const jsNotes = `() => navigator.serviceWorker.getRegistration('/').then((r) => r.getNotifications()).then((ns) =>
		ns.map((n) => ({title: n.title, body: n.body, tag: n.tag, conv: n.data?.convId})))`
	msg := map[string]any{"push_id": "p_1", "type": "message", "workspace_id": "w_1", "conv_id": "c_abc", "seq": 7,
		"msg_id": "m_1", "count": 1, "tag": "parley:c_abc", "title": "team", "sender": "bo", "body": "lunch?"}
	// waitNotes waits in the page (waitFor takes a promise for truthy)
	// until the notifications satisfy cond.
	waitNotes := func(what, cond string) {
		t.Helper()
		var ok bool
		v := ana.eval(`async () => { for (let i = 0; i < 200; i++) { const ns = await (`+jsNotes+`)(); if ((`+cond+`)(ns)) return true; await new Promise((r) => setTimeout(r, 50)); } return false; }`, nil)
		if err := json.Unmarshal(v, &ok); err != nil || !ok {
			t.Fatalf("waiting for %s: notifications %s", what, ana.eval(jsNotes, nil))
		}
	}
	ana.do("push", map[string]any{"data": msg})
	waitNotes("the first notification", `(ns) => ns.length === 1`)
	ana.do("push", map[string]any{"data": msg}) // the same push again: shown once
	other := map[string]any{"push_id": "p_2", "type": "message", "conv_id": "c_def", "seq": 3, "count": 1,
		"tag": "parley:c_def", "sender": "cy", "body": "hi"}
	ana.do("push", map[string]any{"data": other})
	waitNotes("two notifications", `(ns) => ns.length === 2`)
	var notes []struct{ Title, Body, Tag, Conv string }
	if err := json.Unmarshal(ana.eval(jsNotes, nil), &notes); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(notes, func(a, b struct{ Title, Body, Tag, Conv string }) int { return strings.Compare(a.Tag, b.Tag) })
	if len(notes) != 2 || notes[0].Title != "team" || notes[0].Body != "bo: lunch?" || notes[0].Conv != "c_abc" ||
		notes[1].Title != "cy" || notes[1].Body != "hi" || notes[1].Tag != "parley:c_def" {
		t.Fatalf("notifications %+v", notes)
	}
	ana.do("push", map[string]any{"data": map[string]any{"push_id": "p_3", "type": "clear", "conv_id": "c_abc", "seq": 7, "tag": "parley:c_abc"}})
	waitNotes("c_abc's notification closed, c_def's left", `(ns) => ns.length === 1 && ns[0].tag === 'parley:c_def'`)
	// p_1 again (a push service's redelivery) after its notification
	// closed: not shown again; a new push of the conversation is.
	ana.do("push", map[string]any{"data": msg})
	msg["push_id"], msg["body"] = "p_4", "still on?"
	ana.do("push", map[string]any{"data": msg})
	waitNotes("p_4 shown", `(ns) => ns.length === 2 && ns.some((n) => n.body === 'bo: still on?')`)
	waitNotes("p_1 not shown again", `(ns) => !ns.some((n) => n.body === 'bo: lunch?')`)
	// Turning notifications on asks the server for its VAPID key: this
	// system has no Web Push, so the toggle says so and stays off.
	ana.click("button[aria-label=Notifications]")
	ana.waitFor("the toggle's error", `() => /push|service/.test(document.querySelector('.notify [role=alert]')?.textContent ?? '') && document.querySelector('button[aria-label=Notifications]').getAttribute('aria-checked') === 'false'`, nil)
}
