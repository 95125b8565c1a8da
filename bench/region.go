package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// regionConfig is a region on loopback: cores (each with its Raft
// groups, Badger and a clustered NATS server) and edges connected to every
// core's NATS, each the parley subcommand it is as a process ("core",
// "edge"). They run as child processes of Binary, or with Launch in this
// process. Logs go to <Dir>/<name>.log (n1.., e1..).
type regionConfig struct {
	Dir          string
	Cores, Edges int
	Shards       int  // 0: the cores' default
	UDP          bool // the edges also serve QUIC and WebTransport
	Binary       string
	Launch       LaunchFunc // non-nil: run the subcommands in this process
}

// region is a running regionConfig.
type region struct {
	cfg   regionConfig
	procs []*regionProc
	urls  []string // the edges' HTTP base URLs
	udps  []string // the edges' UDP addresses, in the same order ("" without UDP)
	// metrics are the cores' /metrics URLs.
	metrics []string
}

// regionProc is one core or edge: a child process, or (cmd nil) a
// subcommand in this process that cancel stops and done reports.
type regionProc struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
}

// startRegion starts cfg's cores and edges and waits until every edge's
// /readyz answers (it asks the core) or ctx ends. Close stops them.
func startRegion(ctx context.Context, cfg regionConfig) (*region, error) {
	if cfg.Cores < 1 || cfg.Edges < 1 {
		return nil, errors.New("a region needs at least one core and one edge")
	}
	if cfg.Launch == nil && cfg.Binary == "" {
		bin, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	r := &region{cfg: cfg}
	keys := filepath.Join(cfg.Dir, "token.keys")
	if err := r.run(ctx, "keygen", keys); err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	free := func(network string) (string, error) {
		if network == "udp" {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return "", err
			}
			defer pc.Close()
			return pc.LocalAddr().String(), nil
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return ln.Addr().String(), nil
	}
	type coreAddrs struct{ raft, nats, cluster, metrics string }
	addrs := make([]coreAddrs, cfg.Cores)
	var peers, natsURLs []string
	var err error
	for i := range addrs {
		for _, a := range []*string{&addrs[i].raft, &addrs[i].nats, &addrs[i].cluster, &addrs[i].metrics} {
			if *a, err = free("tcp"); err != nil {
				return nil, err
			}
		}
		peers = append(peers, fmt.Sprintf("n%d=%s", i+1, addrs[i].raft))
		natsURLs = append(natsURLs, "nats://"+addrs[i].nats)
	}
	for i, a := range addrs {
		var routes []string
		for j, b := range addrs {
			if j != i {
				routes = append(routes, b.cluster)
			}
		}
		args := []string{"core", "--id", fmt.Sprintf("n%d", i+1), "--data", filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1)),
			"--raft", a.raft, "--peers", strings.Join(peers, ","), "--nats", a.nats, "--metrics", a.metrics, "--log-level", "warn"}
		r.metrics = append(r.metrics, "http://"+a.metrics+"/metrics")
		if cfg.Cores > 1 {
			args = append(args, "--nats-cluster", a.cluster, "--nats-routes", strings.Join(routes, ","))
		}
		if cfg.Shards > 0 {
			args = append(args, "--shards", strconv.Itoa(cfg.Shards))
		}
		if err := r.start(ctx, fmt.Sprintf("n%d", i+1), args); err != nil {
			r.Close()
			return nil, err
		}
	}
	for i := range cfg.Edges {
		httpAddr, err := free("tcp")
		if err != nil {
			r.Close()
			return nil, err
		}
		// The bench's clients all come from 127.0.0.1: lift the per-IP and
		// per-user limits that would otherwise (rightly) throttle them.
		args := []string{"edge", "--nats", strings.Join(natsURLs, ","), "--token-keys", keys,
			"--http", httpAddr, "--user-rate", "1000000", "--user-burst", "1000000",
			"--ip-rate", "1000000", "--ip-burst", "1000000", "--device-rate", "100000", "--log-level", "warn"}
		udpAddr := ""
		if cfg.UDP {
			if udpAddr, err = free("udp"); err != nil {
				r.Close()
				return nil, err
			}
			args = append(args, "--udp", udpAddr)
		}
		if err := r.start(ctx, fmt.Sprintf("e%d", i+1), args); err != nil {
			r.Close()
			return nil, err
		}
		r.urls = append(r.urls, "http://"+httpAddr)
		r.udps = append(r.udps, udpAddr)
	}
	for _, u := range r.urls {
		if err := waitReady(ctx, u+"/readyz", 60*time.Second); err != nil {
			r.Close()
			return nil, fmt.Errorf("%w (logs in %s)", err, cfg.Dir)
		}
	}
	return r, nil
}

// run runs a subcommand that ends by itself (keygen) to its end.
func (r *region) run(ctx context.Context, args ...string) error {
	if r.cfg.Launch != nil {
		return r.cfg.Launch(ctx, args, io.Discard)
	}
	out, err := exec.CommandContext(ctx, r.cfg.Binary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", r.cfg.Binary, args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// start starts the long-running subcommand args as name.
func (r *region) start(ctx context.Context, name string, args []string) error {
	logf, err := os.Create(filepath.Join(r.cfg.Dir, name+".log"))
	if err != nil {
		return err
	}
	p := &regionProc{name: name}
	if r.cfg.Launch != nil {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p.cancel, p.done = cancel, make(chan struct{})
		go func() {
			defer close(p.done)
			defer logf.Close()
			if err := r.cfg.Launch(pctx, args, logf); err != nil {
				fmt.Fprintf(logf, "%s: %v\n", name, err)
			}
		}()
		r.procs = append(r.procs, p)
		return nil
	}
	defer logf.Close() // the child holds its own descriptor
	p.cmd = exec.Command(r.cfg.Binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// The children die with the bench, even when it is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	r.procs = append(r.procs, p)
	return nil
}

// pid returns the process id of the named child process (n1, e1, ...),
// or 0 (none, or run in this process).
func (r *region) pid(name string) int {
	for _, p := range r.procs {
		if p.name == name && p.cmd != nil {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// Close stops every core and edge and waits: child processes get SIGTERM,
// then SIGKILL after 10 s; subcommands in this process are cancelled
// (each bounds its own shutdown).
func (r *region) Close() {
	for _, p := range r.procs {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		} else {
			p.cancel()
		}
	}
	for _, p := range r.procs {
		if p.cmd == nil {
			<-p.done
			continue
		}
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

// waitReady polls url until it answers 200, ctx ends or limit passes.
func waitReady(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", url, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
