// Command tnhost is what the testnet harness runs inside a host's network
// namespace: a client device (tnhost client), a delaying relay (tnhost
// relay), or the one-off account setup (tnhost setup). Commands come on
// stdin, one per line; status lines go to stdout; logs to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/testnet/agent"
	"github.com/parley-chat/parley/testnet/relay"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tnhost client|relay|setup [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Debug: the SDK says why each session ended and each connect failed.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	switch os.Args[1] {
	case "client":
		err = runClient(ctx, os.Args[2:], log)
	case "relay":
		err = runRelay(ctx, os.Args[2:], log)
	case "setup":
		err = runSetup(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tnhost:", err)
		os.Exit(1)
	}
}

// out serializes status lines.
var outMu sync.Mutex

func say(s string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Println(s)
}

// commands reads stdin lines into a channel until stdin ends.
func commands(ctx context.Context) <-chan string {
	ch := make(chan string)
	go func() { // ends with stdin (the harness closes it, or dies)
		defer close(ch)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runClient(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	var cfg agent.Config
	var httpList, udpList, convs, events string
	fs.StringVar(&cfg.Name, "name", "", "device name")
	fs.StringVar(&cfg.Workspace, "workspace", "", "")
	fs.StringVar(&cfg.User, "user", "", "")
	fs.StringVar(&cfg.Password, "password", "", "")
	fs.StringVar(&httpList, "http", "", "edges' HTTP base URLs, comma-separated")
	fs.StringVar(&udpList, "udp", "", "edges' UDP addresses, comma-separated")
	fs.StringVar(&cfg.Transport, "transport", "ws", "quic, wt or ws")
	fs.StringVar(&convs, "convs", "", "conversation ids to send to")
	fs.DurationVar(&cfg.SendEvery, "send-every", 0, "send pace per conversation")
	fs.DurationVar(&cfg.ReadEvery, "read-every", 0, "read receipt pace")
	fs.StringVar(&events, "events", "", "events file (JSON lines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.HTTP, cfg.UDP, cfg.Convs = list(httpList), list(udpList), list(convs)
	f, err := os.Create(events)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg.Events = f
	cfg.Logger = log.With("device", cfg.Name)
	return agent.Run(ctx, cfg, commands(ctx), say)
}

func runRelay(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	maps := fs.String("map", "", "udp|tcp:listen=target,...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := relay.Config{Logger: log}
	for _, m := range list(*maps) {
		mp, err := relay.ParseMap(m)
		if err != nil {
			return err
		}
		cfg.Maps = append(cfg.Maps, mp)
	}
	r, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmds := commands(ctx)
	go func() { // "delay up|down D J"; stdin's end ends the relay
		defer cancel()
		for c := range cmds {
			f := strings.Fields(c)
			if len(f) != 4 || f[0] != "delay" {
				say("error " + c)
				continue
			}
			d, err1 := time.ParseDuration(f[2])
			j, err2 := time.ParseDuration(f[3])
			if err1 != nil || err2 != nil {
				say("error " + c)
				continue
			}
			dir := relay.Up
			if f[1] == "down" {
				dir = relay.Down
			}
			r.SetDelay(dir, d, j)
			say("ok " + c)
		}
	}()
	return r.Run(ctx, func() { say("ready") })
}

// runSetup registers users (the first creates the workspace) and creates
// group conversations; it prints their ids and members as JSON.
func runSetup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	base := fs.String("http", "", "an edge's HTTP base URL")
	ws := fs.String("workspace", "", "")
	pw := fs.String("password", "", "")
	users := fs.String("users", "", "usernames, comma-separated")
	groups := fs.String("groups", "", "name:user+user+...;name:...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, u := range list(*users) {
		rc := rest.New(*base)
		for {
			_, err := rc.Register(ctx, *ws, u, *pw)
			if err == nil || rest.Code(err) == syncpb.Code_CODE_CONFLICT {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("register %s: %w", u, err)
			}
			select { // the region may still be electing
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	out := struct {
		Convs   map[string]string   `json:"convs"`   // name -> id
		Members map[string][]string `json:"members"` // name -> user ids
	}{map[string]string{}, map[string][]string{}}
	for _, g := range strings.Split(*groups, ";") {
		name, members, ok := strings.Cut(g, ":")
		if !ok {
			continue
		}
		ms := strings.Split(members, "+")
		rc := rest.New(*base)
		if _, err := rc.Login(ctx, rest.LoginRequest{Workspace: *ws, Username: ms[0], Password: *pw, DeviceName: "setup"}); err != nil {
			return fmt.Errorf("login %s: %w", ms[0], err)
		}
		c, err := rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: name, MemberUsernames: ms[1:]})
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		out.Convs[name] = c.ID
		for _, m := range c.Members {
			out.Members[name] = append(out.Members[name], m.UserID)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
