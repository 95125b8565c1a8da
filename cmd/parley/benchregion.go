package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// regionProcs is a region of separate processes of this binary on
// loopback, as `parley bench -region` measures it: cores (each with its
// Raft groups, Badger and a clustered NATS server) and edges connected to
// every core's NATS. Logs go to <dir>/<name>.log.
type regionProcs struct {
	dir   string
	cmds  []*exec.Cmd
	names []string
	urls  []string // the edges' HTTP base URLs
	udps  []string // the edges' UDP addresses, in the same order
}

// startRegionProcs starts cores and edges and waits until every edge's
// /readyz answers (it asks the core) or ctx ends. Close stops them.
func startRegionProcs(ctx context.Context, dir string, cores, edges int) (*regionProcs, error) {
	if cores < 1 || edges < 1 {
		return nil, errors.New("a region needs at least one core and one edge")
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	keys := filepath.Join(dir, "token.keys")
	if err := runKeygen([]string{keys}, io.Discard, io.Discard); err != nil {
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
	type coreAddrs struct{ raft, nats, cluster string }
	addrs := make([]coreAddrs, cores)
	var peers, natsURLs []string
	for i := range addrs {
		for _, a := range []*string{&addrs[i].raft, &addrs[i].nats, &addrs[i].cluster} {
			if *a, err = free("tcp"); err != nil {
				return nil, err
			}
		}
		peers = append(peers, fmt.Sprintf("n%d=%s", i+1, addrs[i].raft))
		natsURLs = append(natsURLs, "nats://"+addrs[i].nats)
	}
	p := &regionProcs{dir: dir}
	for i, a := range addrs {
		var routes []string
		for j, b := range addrs {
			if j != i {
				routes = append(routes, b.cluster)
			}
		}
		args := []string{"core", "--id", fmt.Sprintf("n%d", i+1), "--data", filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			"--raft", a.raft, "--peers", strings.Join(peers, ","), "--nats", a.nats, "--log-level", "warn"}
		if cores > 1 {
			args = append(args, "--nats-cluster", a.cluster, "--nats-routes", strings.Join(routes, ","))
		}
		if err := p.start(bin, fmt.Sprintf("n%d", i+1), args); err != nil {
			p.Close()
			return nil, err
		}
	}
	for i := range edges {
		httpAddr, err := free("tcp")
		if err != nil {
			p.Close()
			return nil, err
		}
		udpAddr, err := free("udp")
		if err != nil {
			p.Close()
			return nil, err
		}
		// The bench's clients all come from 127.0.0.1: lift the per-IP and
		// per-user limits that would otherwise (rightly) throttle them.
		args := []string{"edge", "--nats", strings.Join(natsURLs, ","), "--token-keys", keys,
			"--http", httpAddr, "--udp", udpAddr, "--user-rate", "1000000", "--user-burst", "1000000",
			"--ip-rate", "1000000", "--ip-burst", "1000000", "--device-rate", "100000", "--log-level", "warn"}
		if err := p.start(bin, fmt.Sprintf("e%d", i+1), args); err != nil {
			p.Close()
			return nil, err
		}
		p.urls = append(p.urls, "http://"+httpAddr)
		p.udps = append(p.udps, udpAddr)
	}
	for _, u := range p.urls {
		if err := waitReady(ctx, u+"/readyz", 60*time.Second); err != nil {
			p.Close()
			return nil, fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}
	return p, nil
}

func (p *regionProcs) start(bin, name string, args []string) error {
	logf, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The children die with the bench, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p.cmds = append(p.cmds, cmd)
	p.names = append(p.names, name)
	return nil
}

// pid returns the process id of the named process (n1, e1, ...), or 0.
func (p *regionProcs) pid(name string) int {
	for i, n := range p.names {
		if n == name {
			return p.cmds[i].Process.Pid
		}
	}
	return 0
}

// Close stops every process (SIGTERM, then SIGKILL after 10 s) and waits.
func (p *regionProcs) Close() {
	for _, c := range p.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range p.cmds {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
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
