package media

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Defaults for ThumbConfig's zero fields.
const (
	DefaultMaxPixels     = 25_000_000 // a 6000×4000 photo
	DefaultMaxInput      = 128 << 20
	DefaultMaxHeader     = 1 << 20
	DefaultThumbSize     = 320
	DefaultQuality       = 80
	DefaultMaxThumbBytes = 64 << 10
)

// ThumbConfig bounds Thumbnail. Zero fields take their defaults.
type ThumbConfig struct {
	// MaxPixels is the largest width×height Thumbnail decodes. The
	// decoders' memory grows with it: up to about 16 bytes a pixel (a
	// progressive JPEG's coefficients, a 16-bit PNG).
	MaxPixels int64
	// MaxInput is how many bytes of the image Thumbnail reads at most.
	MaxInput int64
	// MaxHeader is how many bytes Thumbnail reads to learn an image's
	// size before it decodes (JPEG metadata segments come first); at
	// least SniffLen.
	MaxHeader int
	// ThumbSize is the thumbnail's longest side in pixels; smaller
	// images keep their size.
	ThumbSize int
	// Quality is the thumbnail's JPEG quality, 1 to 100.
	Quality int
	// MaxThumbBytes bounds the encoded thumbnail; Thumbnail lowers the
	// quality until it fits.
	MaxThumbBytes int
}

func (c ThumbConfig) withDefaults() ThumbConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = DefaultMaxPixels
	}
	if c.MaxInput <= 0 {
		c.MaxInput = DefaultMaxInput
	}
	def(&c.MaxHeader, DefaultMaxHeader)
	c.MaxHeader = max(c.MaxHeader, SniffLen)
	def(&c.ThumbSize, DefaultThumbSize)
	def(&c.Quality, DefaultQuality)
	def(&c.MaxThumbBytes, DefaultMaxThumbBytes)
	c.Quality = min(c.Quality, 100)
	return c
}

// Image is what Thumbnail learns of an image.
type Image struct {
	Type          string // the sniffed media type: "image/jpeg", "image/png", "image/gif", "image/webp"
	Width, Height int
	Thumb         []byte // a JPEG, at most ThumbSize on its longest side
	ThumbWidth    int
	ThumbHeight   int
}

// Errors Thumbnail returns, besides a decoder's own.
var (
	ErrUnsupported = errors.New("media: not an image Thumbnail decodes") // not JPEG, PNG, GIF or WebP
	ErrTooLarge    = errors.New("media: image too large to decode")      // past MaxPixels, MaxInput or MaxHeader
)

type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// codecs are the formats Thumbnail decodes, by sniffed type. It calls
// them directly rather than through image.Decode, so no other format
// that some import registers is ever decoded.
var codecs = map[string]codec{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode}, // the first frame
	"image/webp": {webp.DecodeConfig, webp.Decode},
}

// Thumbnail reads an image from r and returns its type, size and a JPEG
// thumbnail. It sniffs the type from the bytes, reads the image's
// dimensions from its header and refuses, before decoding, an image past
// cfg.MaxPixels (ErrTooLarge), so a small file that claims a huge image
// costs nothing. GIFs give their first frame; transparency is drawn over
// white. When the size is known but decoding fails (an animated WebP,
// which x/image does not decode, or a corrupt body), the error comes
// with an Image that has Type, Width and Height.
func Thumbnail(r io.Reader, cfg ThumbConfig) (Image, error) {
	cfg = cfg.withDefaults()
	in := &recorder{r: &limited{r: r, n: cfg.MaxInput}, max: cfg.MaxHeader}
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(in, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Image{}, fmt.Errorf("media: thumbnail: %w", err)
	}
	img := Image{Type: base(Sniff(head[:n]))}
	c, ok := codecs[img.Type]
	if !ok {
		return img, fmt.Errorf("%w: %s", ErrUnsupported, img.Type)
	}
	// The header may run past the first bytes: the decoder reads on
	// through the recorder, which keeps what it reads for decoding.
	conf, err := c.config(io.MultiReader(bytes.NewReader(head[:n]), in))
	if err != nil {
		return img, fmt.Errorf("media: thumbnail: %s header: %w", img.Type, err)
	}
	img.Width, img.Height = conf.Width, conf.Height
	if conf.Width <= 0 || conf.Height <= 0 || int64(conf.Width)*int64(conf.Height) > cfg.MaxPixels {
		return img, fmt.Errorf("%w: %d×%d is past %d pixels", ErrTooLarge, conf.Width, conf.Height, cfg.MaxPixels)
	}
	in.stop()
	src, err := c.decode(io.MultiReader(bytes.NewReader(in.buf.Bytes()), in))
	if err != nil {
		return img, fmt.Errorf("media: thumbnail: decoding %s: %w", img.Type, err)
	}
	if b := src.Bounds(); int64(b.Dx())*int64(b.Dy()) > cfg.MaxPixels {
		return img, fmt.Errorf("%w: decoded %v", ErrTooLarge, b)
	}
	img.Thumb, img.ThumbWidth, img.ThumbHeight, err = thumb(src, cfg)
	return img, err
}

// thumb scales src to fit in cfg.ThumbSize and encodes it as a JPEG of at
// most cfg.MaxThumbBytes.
func thumb(src image.Image, cfg ThumbConfig) ([]byte, int, int, error) {
	b := src.Bounds()
	w, h := fit(b.Dx(), b.Dy(), cfg.ThumbSize)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.BiLinear.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	var out bytes.Buffer
	for q := cfg.Quality; ; q = q * 2 / 3 {
		out.Reset()
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: max(q, 1)}); err != nil {
			return nil, 0, 0, fmt.Errorf("media: thumbnail: encoding: %w", err)
		}
		if out.Len() <= cfg.MaxThumbBytes {
			return out.Bytes(), w, h, nil
		}
		if q <= 1 {
			return nil, 0, 0, fmt.Errorf("media: thumbnail: %d bytes at the lowest quality, past %d", out.Len(), cfg.MaxThumbBytes)
		}
	}
}

// fit returns w×h scaled down to fit in a size×size box, keeping its
// aspect, at least 1×1; an image that fits keeps its size.
func fit(w, h, size int) (int, int) {
	if w <= size && h <= size {
		return w, h
	}
	if w >= h {
		return size, max(1, int(int64(h)*int64(size)/int64(w)))
	}
	return max(1, int(int64(w)*int64(size)/int64(h))), size
}

// recorder keeps a copy of what is read through it, up to max bytes,
// until stop; reading past max while recording fails with ErrTooLarge.
type recorder struct {
	r       io.Reader
	buf     bytes.Buffer
	max     int
	stopped bool
}

func (r *recorder) Read(p []byte) (int, error) {
	if !r.stopped {
		if room := r.max - r.buf.Len(); room <= 0 {
			return 0, fmt.Errorf("%w: header past %d bytes", ErrTooLarge, r.max)
		} else if len(p) > room {
			p = p[:room]
		}
	}
	n, err := r.r.Read(p)
	if !r.stopped {
		r.buf.Write(p[:n])
	}
	return n, err
}

func (r *recorder) stop() { r.stopped = true }

// limited is io.LimitReader that fails, rather than ending, past n bytes.
type limited struct {
	r io.Reader
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			return 0, fmt.Errorf("%w: input past its limit", ErrTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
