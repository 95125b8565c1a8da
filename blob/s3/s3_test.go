package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/blob/blobtest"
	"github.com/parley-chat/parley/blob/s3"
	"github.com/parley-chat/parley/internal/poll"
)

// The tests run against one versitygw (a real S3 API server, on a POSIX
// directory) that the first test to need it starts on a free loopback
// port; TestMain stops it. Each store gets its own bucket.
const (
	accessKey = "parleytest"
	secretKey = "parleytest-secret-key"
)

var gw struct {
	once     sync.Once
	endpoint string
	err      error
	skip     string
	cmd      *exec.Cmd
	dir      string
	log      lockedBuffer
}

// lockedBuffer is versitygw's output, written by exec's copying goroutine
// and read by a failing test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var buckets atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	if gw.cmd != nil {
		gw.cmd.Process.Kill()
		gw.cmd.Wait()
	}
	if gw.dir != "" {
		os.RemoveAll(gw.dir)
	}
	os.Exit(code)
}

// versitygwBinary finds versitygw on PATH or in $(go env GOPATH)/bin.
func versitygwBinary() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// endpoint returns the running versitygw's URL, starting it the first
// time. Without the binary it skips tb, or fails it when PARLEY_REQUIRE_S3=1
// (as CI sets).
func endpoint(tb testing.TB) string {
	tb.Helper()
	gw.once.Do(startGateway)
	if gw.skip != "" {
		if os.Getenv("PARLEY_REQUIRE_S3") == "1" {
			tb.Fatalf("PARLEY_REQUIRE_S3=1 but %s", gw.skip)
		}
		tb.Skip(gw.skip)
	}
	if gw.err != nil {
		tb.Fatalf("starting versitygw: %v\n%s", gw.err, gw.log.String())
	}
	return gw.endpoint
}

func startGateway() {
	bin := versitygwBinary()
	if bin == "" {
		gw.skip = "versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"
		return
	}
	if gw.dir, gw.err = os.MkdirTemp("", "parley-versitygw-"); gw.err != nil {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gw.err = err
		return
	}
	addr := l.Addr().String()
	l.Close()
	gw.cmd = exec.Command(bin, "--port", addr, "posix", gw.dir)
	gw.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	gw.cmd.Stdout, gw.cmd.Stderr = &gw.log, &gw.log
	gw.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	if gw.err = gw.cmd.Start(); gw.err != nil {
		gw.cmd = nil
		return
	}
	gw.endpoint = "http://" + addr
	probe, err := s3.New(s3.Config{Endpoint: gw.endpoint, Bucket: "probe", AccessKey: accessKey, SecretKey: secretKey})
	if err != nil {
		gw.err = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw.err = poll.Wait(ctx, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := probe.Client().ListBuckets(rctx, &awss3.ListBucketsInput{})
		return err
	})
}

// newTestStore makes a bucket and a store in it; at cleanup it checks that
// no multipart upload was left unfinished.
func newTestStore(tb testing.TB, o blobtest.Options) *s3.Store {
	tb.Helper()
	bucket := fmt.Sprintf("parley-test-%d", buckets.Add(1))
	s, err := s3.New(s3.Config{
		Endpoint:  endpoint(tb),
		Bucket:    bucket,
		AccessKey: accessKey,
		SecretKey: secretKey,
		PartSize:  s3.MinPartSize,
		MaxSize:   o.MaxSize,
		Now:       o.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		tb.Fatalf("CreateBucket: %v", err)
	}
	tb.Cleanup(func() {
		out, err := s.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			tb.Errorf("ListMultipartUploads: %v", err)
			return
		}
		for _, u := range out.Uploads {
			tb.Errorf("left behind: multipart upload %s of %s", aws.ToString(u.UploadId), aws.ToString(u.Key))
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	endpoint(t)
	blobtest.Run(t, func(t *testing.T, o blobtest.Options) blob.Store {
		return newTestStore(t, o)
	})
}

func TestMultipartConcurrency(t *testing.T) {
	// Several parts in flight at once, of a blob that ends mid-part.
	s := newTestStore(t, blobtest.Options{})
	const size = 4*s3.MinPartSize + 12345
	data := blobtest.Data(9, size)
	info, err := s.Put(context.Background(), "mp", bytes.NewReader(data), -1)
	if err != nil || info.Size != size {
		t.Fatalf("Put: %+v, %v", info, err)
	}
	o, err := s.Open(context.Background(), "mp", blob.Range{Off: 3*s3.MinPartSize - 5, Len: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var got bytes.Buffer
	got.ReadFrom(o)
	if !bytes.Equal(got.Bytes(), data[3*s3.MinPartSize-5:3*s3.MinPartSize+5]) {
		t.Fatal("range across a part boundary differs")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := s3.Config{Bucket: "b", AccessKey: "a", SecretKey: "s"}
	for name, c := range map[string]s3.Config{
		"no bucket":      {AccessKey: "a", SecretKey: "s"},
		"no keys":        {Bucket: "b"},
		"small parts":    {Bucket: "b", AccessKey: "a", SecretKey: "s", PartSize: 1 << 20},
		"too many parts": {Bucket: "b", AccessKey: "a", SecretKey: "s", PartSize: s3.MinPartSize, MaxSize: s3.MaxParts*s3.MinPartSize + 1},
		"negative":       {Bucket: "b", AccessKey: "a", SecretKey: "s", Concurrency: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

func BenchmarkS3(b *testing.B) {
	blobtest.Bench(b, newTestStore(b, blobtest.Options{}))
}
