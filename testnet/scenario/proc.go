package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the harness started in a host's namespace: its
// stdout lines are kept for waits, stderr goes to a log file, stdin takes
// commands. Every proc is waited for (Kill or Stop).
type proc struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{} // closed when the process has exited and its output is read
	err  error         // Wait's result, set before done closes

	mu    sync.Mutex
	lines []string      // stdout, bounded by the protocol (a few lines per command)
	newL  chan struct{} // closed and replaced when a line arrives
}

// startProc starts cmd with its stderr appended to logPath.
func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), newL: make(chan struct{})}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if p.in, err = cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the harness
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { // owned: ends when the process's stdout closes; Kill/Stop wait for done
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(logf, "[stdout] %s\n", line)
			p.mu.Lock()
			if len(p.lines) < 10000 {
				p.lines = append(p.lines, line)
			}
			close(p.newL)
			p.newL = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// send writes one command line.
func (p *proc) send(line string) error {
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		return fmt.Errorf("%s: command %q: %w", p.name, line, err)
	}
	return nil
}

// waitLine waits for a stdout line starting with prefix after the first
// `from` lines, and returns it with its index.
func (p *proc) waitLine(ctx context.Context, prefix string, from int, timeout time.Duration) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.HasPrefix(p.lines[i], prefix) {
				p.mu.Unlock()
				return p.lines[i], i, nil
			}
		}
		ch := p.newL
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			return "", 0, fmt.Errorf("%s exited (%v) before %q", p.name, p.err, prefix)
		case <-ctx.Done():
			return "", 0, fmt.Errorf("%s: no %q within %s: %w", p.name, prefix, timeout, ctx.Err())
		}
	}
}

func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Kill ends the process at once (a crash) and waits for it.
func (p *proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to end (closes stdin, SIGTERM) and waits up to
// grace before killing it.
func (p *proc) Stop(grace time.Duration) error {
	_ = p.in.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s: did not stop within %s", p.name, grace)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.ExitCode() < 0 { // ended by our signal
		return nil
	}
	return p.err
}

// exited says whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
