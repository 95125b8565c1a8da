// Package s3 is a blob.Store in a bucket of any S3 API (AWS S3, versitygw,
// MinIO, Ceph RGW, ...), addressed path-style by default, with presigned
// GET URLs.
//
// Put streams with bounded memory: a blob that fits in one part goes up
// with one PutObject, a larger one as a multipart upload of PartSize
// parts, Concurrency of them in flight while the next one fills, so a Put
// holds at most (Concurrency+1) × PartSize bytes. A multipart upload becomes visible only
// when it completes. A Put that fails, ctx ending included, stops reading,
// lets the parts in flight finish (each within RequestTimeout) and then
// aborts the upload, so that no cut-off part outlives the abort.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/parley-chat/parley/blob"
)

// Defaults for Config's zero fields, and the bounds S3 sets.
const (
	DefaultRegion         = "us-east-1"
	DefaultPartSize       = 8 << 20
	DefaultConcurrency    = 2
	DefaultMaxSize        = 5 << 30
	DefaultRequestTimeout = 5 * time.Minute
	MinPartSize           = 5 << 20            // S3's smallest part but the last
	MaxParts              = 10000              // S3's most parts in one upload
	MaxPresign            = 7 * 24 * time.Hour // SigV4's longest presigned URL
)

// Config configures a Store. Zero fields but Bucket and the keys take
// their defaults.
type Config struct {
	// Endpoint is the S3 API's base URL ("http://127.0.0.1:7070"); empty
	// means AWS's endpoint for Region.
	Endpoint string
	// Region is the signing region (DefaultRegion).
	Region string
	// Bucket holds the blobs; it must exist.
	Bucket string
	// AccessKey and SecretKey are the static credentials requests are
	// signed with.
	AccessKey, SecretKey string
	// VirtualHosted addresses the bucket as a host name
	// (bucket.endpoint/key) instead of a path (endpoint/bucket/key),
	// which every S3 API understands.
	VirtualHosted bool
	// PartSize is the size of a multipart upload's parts, at least
	// MinPartSize (DefaultPartSize).
	PartSize int64
	// Concurrency is how many parts of one Put are in flight at once
	// (DefaultConcurrency).
	Concurrency int
	// MaxSize is the largest blob Put accepts (DefaultMaxSize), at most
	// MaxParts × PartSize.
	MaxSize int64
	// RequestTimeout bounds each S3 request but a GetObject's body, which
	// the caller's ctx bounds (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// HTTPClient sends the requests (the SDK's default client).
	HTTPClient *http.Client
	// Now is the clock presigned URLs are signed with (time.Now).
	Now func() time.Time
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("s3: Config.Bucket is empty")
	case c.AccessKey == "" || c.SecretKey == "":
		return errors.New("s3: Config.AccessKey and SecretKey are required")
	case c.PartSize != 0 && c.PartSize < MinPartSize:
		return fmt.Errorf("s3: Config.PartSize %d is below S3's minimum %d", c.PartSize, MinPartSize)
	case c.Concurrency < 0:
		return fmt.Errorf("s3: Config.Concurrency %d is negative", c.Concurrency)
	case c.MaxSize < 0:
		return fmt.Errorf("s3: Config.MaxSize %d is negative", c.MaxSize)
	case c.RequestTimeout < 0:
		return fmt.Errorf("s3: Config.RequestTimeout %v is negative", c.RequestTimeout)
	}
	part := c.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if c.MaxSize > MaxParts*part {
		return fmt.Errorf("s3: Config.MaxSize %d is more than %d parts of PartSize %d", c.MaxSize, MaxParts, part)
	}
	return nil
}

// Store is a blob.Store in an S3 bucket. It is safe for concurrent use.
type Store struct {
	cfg     Config
	client  *s3.Client
	presign *s3.PresignClient
	bufs    sync.Pool // *[]byte of PartSize
}

var (
	_ blob.Store     = (*Store)(nil)
	_ blob.Presigner = (*Store)(nil)
)

// New returns a store for cfg's bucket. It sends no request.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = min(DefaultMaxSize, MaxParts*cfg.PartSize)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		UsePathStyle: !cfg.VirtualHosted,
		// Checksums only where the API requires them: not every S3 API
		// takes the SDK's default trailing CRC32.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	s := &Store{cfg: cfg, client: s3.New(opts)}
	s.presign = s3.NewPresignClient(s.client, func(o *s3.PresignOptions) {
		o.Presigner = clockedSigner{v4.NewSigner(), cfg.Now}
	})
	s.bufs.New = func() any { b := make([]byte, cfg.PartSize); return &b }
	return s, nil
}

// clockedSigner presigns with the store's clock instead of the SDK's.
type clockedSigner struct {
	s   *v4.Signer
	now func() time.Time
}

func (c clockedSigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return c.s.PresignHTTP(ctx, creds, r, payloadHash, service, region, c.now(), optFns...)
}

// Client is the SDK client the store sends with, for what blob.Store does
// not cover (creating buckets in tests, listing uploads).
func (s *Store) Client() *s3.Client { return s.client }

func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// fail is the *blob.Error for an S3 call's err: S3's error codes for a
// missing key and an unsatisfiable range become blob's.
func fail(op, key string, err error) error {
	var code blob.Code
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			code = blob.CodeNotFound
		case "InvalidRange":
			code = blob.CodeBadRange
		}
	}
	return blob.NewError(op, key, code, err)
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	if err := blob.ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	st, err := blob.NewStream(ctx, r, size, s.cfg.MaxSize)
	if err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	first := s.bufs.Get().(*[]byte)
	n, last, err := fill(st, *first)
	if err != nil {
		s.bufs.Put(first)
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	if last {
		err = s.putObject(ctx, key, (*first)[:n])
		s.bufs.Put(first)
		if err != nil {
			return blob.Info{}, fail("put", key, err)
		}
		return st.Info(key), nil
	}
	if err := s.multipart(ctx, key, st, first, n); err != nil {
		return blob.Info{}, fail("put", key, err)
	}
	return st.Info(key), nil
}

// fill reads from st until buf is full or the stream ends; last reports
// the end (a valid one: Stream turns a wrong length into an error).
func fill(st *blob.Stream, buf []byte) (n int, last bool, err error) {
	n, err = io.ReadFull(st, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return n, true, nil
	}
	return n, false, err
}

func (s *Store) putObject(ctx context.Context, key string, b []byte) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.cfg.Bucket,
		Key:           &key,
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
	})
	return err
}

// multipart uploads the stream as parts, first being part 1 (n bytes,
// full), and completes the upload; on any failure it aborts it.
func (s *Store) multipart(ctx context.Context, key string, st *blob.Stream, first *[]byte, n int) (err error) {
	cctx, cancel := s.timeout(ctx)
	up, err := s.client.CreateMultipartUpload(cctx, &s3.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key})
	cancel()
	if err != nil {
		s.bufs.Put(first)
		return err
	}
	defer func() {
		if err != nil {
			// Abort even when ctx has ended, within the request timeout.
			actx, cancel := s.timeout(context.WithoutCancel(ctx))
			defer cancel()
			if aerr := s.abort(actx, key, up.UploadId); aerr != nil {
				err = fmt.Errorf("%w (and aborting the upload: %v)", err, aerr)
			}
		}
	}()

	// Parts in flight are not canceled when ctx ends or another part
	// fails: the upload is aborted only once none is in flight, since S3
	// may keep a part whose upload was cut off while the abort ran (and
	// the upload with it).
	pctx := context.WithoutCancel(ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		parts   []types.CompletedPart
		partErr error
		slots   = make(chan struct{}, s.cfg.Concurrency)
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return partErr
	}
	upload := func(num int32, buf *[]byte, n int) {
		defer func() { s.bufs.Put(buf); <-slots; wg.Done() }()
		rctx, cancel := s.timeout(pctx)
		defer cancel()
		out, err := s.client.UploadPart(rctx, &s3.UploadPartInput{
			Bucket:        &s.cfg.Bucket,
			Key:           &key,
			UploadId:      up.UploadId,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader((*buf)[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if partErr == nil {
				partErr = fmt.Errorf("part %d: %w", num, err)
			}
			return
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	}
	start := func(num int32, buf *[]byte, n int) {
		slots <- struct{}{}
		wg.Add(1)
		go upload(num, buf, n)
	}
	buf, num := first, int32(1)
	for {
		start(num, buf, n)
		buf = s.bufs.Get().(*[]byte)
		var last bool
		n, last, err = fill(st, *buf)
		if err == nil {
			err = failed()
		}
		if err == nil && n > 0 && num == MaxParts {
			// Stream stops at MaxSize ≤ MaxParts × PartSize bytes.
			err = fmt.Errorf("s3: more than %d parts", MaxParts)
		}
		if err != nil || n == 0 {
			s.bufs.Put(buf)
			break
		}
		num++
		if last {
			start(num, buf, n)
			break
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	if err := failed(); err != nil {
		return err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	cctx, cancel = s.timeout(ctx)
	defer cancel()
	_, err = s.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.cfg.Bucket,
		Key:             &key,
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}

func (s *Store) abort(ctx context.Context, key string, id *string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: id})
	return err
}

// Open implements blob.Store. The body streams from S3 under ctx.
func (s *Store) Open(ctx context.Context, key string, rg blob.Range) (*blob.Object, error) {
	if err := blob.ValidKey(key); err != nil {
		return nil, err
	}
	if rg.Off < 0 {
		return nil, blob.NewError("open", key, blob.CodeBadRange, nil)
	}
	if rg.Len == 0 {
		// S3 cannot name an empty range: check the key and the offset.
		return s.empty(ctx, key, rg)
	}
	in := &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}
	if rg != blob.Whole {
		end := ""
		if rg.Len > 0 {
			end = strconv.FormatInt(rg.Off+rg.Len-1, 10)
		}
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%s", rg.Off, end))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		err = fail("open", key, err)
		if errors.Is(err, blob.ErrBadRange) {
			// S3 refuses a range that starts at the end; blob serves it
			// empty.
			return s.empty(ctx, key, rg)
		}
		return nil, err
	}
	o := &blob.Object{Info: blob.Info{Key: key, ModTime: aws.ToTime(out.LastModified)}, Body: out.Body}
	o.Len = aws.ToInt64(out.ContentLength)
	o.Size = o.Len
	if out.ContentRange != nil {
		if o.Off, o.Size, err = parseContentRange(*out.ContentRange); err != nil {
			out.Body.Close()
			return nil, blob.NewError("open", key, "", err)
		}
	}
	return o, nil
}

// empty returns an empty Object at rg.Off of key, after checking with
// Stat that key holds a blob that long.
func (s *Store) empty(ctx context.Context, key string, rg blob.Range) (*blob.Object, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, blob.NewError("open", key, "", err)
	}
	off, n, err := blob.Range{Off: rg.Off, Len: 0}.Resolve(info.Size)
	if err != nil {
		return nil, blob.NewError("open", key, "", err)
	}
	return &blob.Object{Info: info, Off: off, Len: n, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// parseContentRange reads "bytes first-last/size".
func parseContentRange(v string) (off, size int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	first, rest, ok2 := strings.Cut(rest, "-")
	_, total, ok3 := strings.Cut(rest, "/")
	if ok && ok2 && ok3 {
		off, err1 := strconv.ParseInt(first, 10, 64)
		size, err2 := strconv.ParseInt(total, 10, 64)
		if err1 == nil && err2 == nil {
			return off, size, nil
		}
	}
	return 0, 0, fmt.Errorf("s3: bad Content-Range %q", v)
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return blob.Info{}, fail("stat", key, err)
	}
	return blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidKey(key); err != nil {
		return err
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil && !errors.Is(fail("delete", key, err), blob.ErrNotFound) {
		return fail("delete", key, err)
	}
	return nil
}

// PresignGet implements blob.Presigner: a SigV4 presigned GetObject URL,
// signed with Config.Now, valid for ttl (at most MaxPresign).
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := blob.ValidKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxPresign {
		return "", blob.NewError("presign", key, blob.CodeInvalid, fmt.Errorf("expiry %v not in (0, %v]", ttl, MaxPresign))
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fail("presign", key, err)
	}
	return req.URL, nil
}
