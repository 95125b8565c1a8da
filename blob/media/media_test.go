package media_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/blob/media"
)

// tinyWebP is a 1×1 lossless WebP (the standard library cannot encode
// WebP; x/image only decodes it).
var tinyWebP = mustHex("524946461a000000574542505650384c0d0000002f00000010071011118888fe0700")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// gradient is a w×h test picture: red across, green down, opaque.
func gradient(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), 128, 255})
		}
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encodeGIF makes a two-frame GIF: the first frame red, the second blue.
func encodeGIF(t testing.TB, w, h int) []byte {
	frame := func(c color.Color) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		idx := uint8(p.Palette.Index(c))
		for i := range p.Pix {
			p.Pix[i] = idx
		}
		return p
	}
	var b bytes.Buffer
	err := gif.EncodeAll(&b, &gif.GIF{
		Image: []*image.Paletted{frame(color.RGBA{255, 0, 0, 255}), frame(color.RGBA{0, 0, 255, 255})},
		Delay: []int{10, 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"png", encodePNG(t, gradient(4, 4)), "image/png"},
		{"jpeg", encodeJPEG(t, gradient(4, 4)), "image/jpeg"},
		{"gif", encodeGIF(t, 4, 4), "image/gif"},
		{"webp", tinyWebP, "image/webp"},
		{"pdf", []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"), "application/pdf"},
		{"text", []byte("hello, world\n"), "text/plain; charset=utf-8"},
		{"html", []byte("<!DOCTYPE html><html><body>hi</body></html>"), "text/html; charset=utf-8"},
		{"empty", nil, "text/plain"},
		{"binary", []byte{0, 1, 2, 3, 0xff, 0xfe, 0, 0}, "application/octet-stream"},
	} {
		if got := media.Sniff(tc.data); got != tc.want {
			t.Errorf("%s: Sniff = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSniffReader(t *testing.T) {
	data := append(encodePNG(t, gradient(64, 64)), bytes.Repeat([]byte{7}, 10000)...)
	typ, r, err := media.SniffReader(bytes.NewReader(data))
	if err != nil || typ != "image/png" {
		t.Fatalf("SniffReader = %q, %v", typ, err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, data) {
		t.Fatalf("SniffReader's reader gave %d bytes, want the whole %d", len(got), len(data))
	}
	typ, r, err = media.SniffReader(strings.NewReader("short"))
	if got, _ := io.ReadAll(r); err != nil || string(got) != "short" || !strings.HasPrefix(typ, "text/plain") {
		t.Fatalf("short stream: %q %q %v", typ, got, err)
	}
}

func TestAllowList(t *testing.T) {
	images := media.AllowList{"image/*", "application/PDF"}
	for _, tc := range []struct {
		list media.AllowList
		typ  string
		ok   bool
	}{
		{nil, "application/x-msdownload", true},
		{images, "image/png", true},
		{images, "image/webp", true},
		{images, "application/pdf", true},
		{images, "text/plain; charset=utf-8", false},
		{images, "application/zip", false},
		{media.AllowList{"text/plain"}, "text/plain; charset=utf-8", true},
		{media.AllowList{"application/x-pdf"}, "application/pdf", true}, // an alias in mimetype's table
		{media.AllowList{"application/zip"}, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", false},
		{media.AllowList{"image/png"}, "image/jpeg", false},
		{media.AllowList{"*/*"}, "application/octet-stream", true},
	} {
		if got := tc.list.Allows(tc.typ); got != tc.ok {
			t.Errorf("%v.Allows(%q) = %v, want %v", tc.list, tc.typ, got, tc.ok)
		}
		if err := tc.list.Check(tc.typ); (err == nil) != tc.ok || (err != nil && !errors.Is(err, media.ErrNotAllowed)) {
			t.Errorf("%v.Check(%q) = %v", tc.list, tc.typ, err)
		}
	}
	if err := images.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range []string{"image", "", "*/png", "image/", "a b/c"} {
		if err := (media.AllowList{bad}).Validate(); err == nil {
			t.Errorf("Validate accepted %q", bad)
		}
	}
}

func decodeThumb(t *testing.T, img media.Image) image.Image {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(img.Thumb))
	if err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	if b := m.Bounds(); b.Dx() != img.ThumbWidth || b.Dy() != img.ThumbHeight {
		t.Fatalf("thumbnail is %v, Image says %d×%d", b, img.ThumbWidth, img.ThumbHeight)
	}
	return m
}

func TestThumbnail(t *testing.T) {
	for _, tc := range []struct {
		name         string
		data         []byte
		typ          string
		w, h, tw, th int
	}{
		{"png", encodePNG(t, gradient(800, 400)), "image/png", 800, 400, 320, 160},
		{"jpeg", encodeJPEG(t, gradient(300, 900)), "image/jpeg", 300, 900, 106, 320},
		{"gif", encodeGIF(t, 640, 640), "image/gif", 640, 640, 320, 320},
		{"webp", tinyWebP, "image/webp", 1, 1, 1, 1},
		{"small png", encodePNG(t, gradient(10, 20)), "image/png", 10, 20, 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := media.Thumbnail(bytes.NewReader(tc.data), media.ThumbConfig{})
			if err != nil {
				t.Fatalf("Thumbnail: %v", err)
			}
			if img.Type != tc.typ || img.Width != tc.w || img.Height != tc.h || img.ThumbWidth != tc.tw || img.ThumbHeight != tc.th {
				t.Fatalf("Thumbnail = %s %d×%d thumb %d×%d, want %s %d×%d thumb %d×%d",
					img.Type, img.Width, img.Height, img.ThumbWidth, img.ThumbHeight, tc.typ, tc.w, tc.h, tc.tw, tc.th)
			}
			if len(img.Thumb) > media.DefaultMaxThumbBytes {
				t.Errorf("thumbnail of %d bytes", len(img.Thumb))
			}
			decodeThumb(t, img)
		})
	}
}

func TestThumbnailContent(t *testing.T) {
	// A GIF's thumbnail is its first frame (red, not blue).
	img, err := media.Thumbnail(bytes.NewReader(encodeGIF(t, 50, 50)), media.ThumbConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r, _, b, _ := decodeThumb(t, img).At(25, 25).RGBA()
	if r>>8 < 200 || b>>8 > 60 {
		t.Errorf("GIF thumbnail centre is r=%d b=%d, want the red first frame", r>>8, b>>8)
	}
	// Transparency is drawn over white.
	clear := image.NewNRGBA(image.Rect(0, 0, 40, 40))
	img, err = media.Thumbnail(bytes.NewReader(encodePNG(t, clear)), media.ThumbConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := decodeThumb(t, img).At(20, 20).RGBA()
	if r>>8 < 245 || g>>8 < 245 || b>>8 < 245 {
		t.Errorf("transparent PNG's thumbnail is %d,%d,%d, want white", r>>8, g>>8, b>>8)
	}
	// A tight byte budget lowers the quality until the thumbnail fits.
	noisy := image.NewGray(image.Rect(0, 0, 320, 320))
	for i := range noisy.Pix {
		noisy.Pix[i] = uint8(i * 7919 % 251)
	}
	img, err = media.Thumbnail(bytes.NewReader(encodePNG(t, noisy)), media.ThumbConfig{MaxThumbBytes: 20 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Thumb) > 20<<10 {
		t.Errorf("thumbnail of %d bytes, budget %d", len(img.Thumb), 20<<10)
	}
}

// bombs are small files whose headers claim images of 10 gigapixels or
// more: Thumbnail must refuse them from the header, before allocating.
func bombs(t testing.TB) map[string][]byte {
	p := encodePNG(t, gradient(2, 2))
	binary.BigEndian.PutUint32(p[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(p[20:], 100000) // IHDR height
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))

	j := encodeJPEG(t, gradient(8, 8))
	sof := bytes.Index(j, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(j[sof+5:], 65000) // height
	binary.BigEndian.PutUint16(j[sof+7:], 65000) // width

	g := encodeGIF(t, 2, 2)
	binary.LittleEndian.PutUint16(g[6:], 65535) // logical screen width
	binary.LittleEndian.PutUint16(g[8:], 65535) // and height

	// A WebP whose VP8X header claims a 16384×16384 canvas.
	w := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\xff\x3f\x00\xff\x3f\x00")
	binary.LittleEndian.PutUint32(w[4:], uint32(len(w)-8))
	return map[string][]byte{"png": p, "jpeg": j, "gif": g, "webp": w}
}

func TestThumbnailRefusesBombs(t *testing.T) {
	for name, data := range bombs(t) {
		t.Run(name, func(t *testing.T) {
			var img media.Image
			var err error
			allocs := testing.AllocsPerRun(1, func() {
				img, err = media.Thumbnail(bytes.NewReader(data), media.ThumbConfig{})
			})
			if !errors.Is(err, media.ErrTooLarge) {
				t.Fatalf("Thumbnail: %v, want ErrTooLarge", err)
			}
			if img.Width < 16384 || img.Height < 16384 {
				t.Errorf("the refused image's size is %d×%d, want what its header claims", img.Width, img.Height)
			}
			if allocs > 200 {
				t.Errorf("%v allocations refusing a bomb", allocs)
			}
		})
	}
	// Within MaxPixels, an image decodes.
	if _, err := media.Thumbnail(bytes.NewReader(encodePNG(t, gradient(100, 100))), media.ThumbConfig{MaxPixels: 100 * 100}); err != nil {
		t.Errorf("an image of exactly MaxPixels: %v", err)
	}
	if _, err := media.Thumbnail(bytes.NewReader(encodePNG(t, gradient(100, 101))), media.ThumbConfig{MaxPixels: 100 * 100}); !errors.Is(err, media.ErrTooLarge) {
		t.Errorf("an image of MaxPixels+100: %v", err)
	}
}

func TestThumbnailLimits(t *testing.T) {
	data := encodePNG(t, gradient(300, 300))
	if _, err := media.Thumbnail(bytes.NewReader(data), media.ThumbConfig{MaxInput: int64(len(data)) / 2}); !errors.Is(err, media.ErrTooLarge) {
		t.Errorf("input past MaxInput: %v, want ErrTooLarge", err)
	}
	if _, err := media.Thumbnail(bytes.NewReader(data), media.ThumbConfig{MaxInput: int64(len(data))}); err != nil {
		t.Errorf("input of exactly MaxInput: %v", err)
	}
	// A JPEG with 200 KiB of metadata before its frame header is past a
	// 64 KiB MaxHeader.
	j := encodeJPEG(t, gradient(16, 16))
	var fat bytes.Buffer
	fat.Write(j[:2]) // SOI
	for range 4 {
		fat.Write([]byte{0xff, 0xe1, 0xff, 0xff}) // APP1, 65533 bytes of payload
		fat.Write(make([]byte, 0xffff-2))
	}
	fat.Write(j[2:])
	if _, err := media.Thumbnail(bytes.NewReader(fat.Bytes()), media.ThumbConfig{MaxHeader: 64 << 10}); !errors.Is(err, media.ErrTooLarge) {
		t.Errorf("header past MaxHeader: %v, want ErrTooLarge", err)
	}
	if img, err := media.Thumbnail(bytes.NewReader(fat.Bytes()), media.ThumbConfig{}); err != nil || img.Width != 16 {
		t.Errorf("the same JPEG within the default MaxHeader: %+v, %v", img, err)
	}
}

func TestThumbnailUnsupported(t *testing.T) {
	_, err := media.Thumbnail(strings.NewReader("%PDF-1.7\n"), media.ThumbConfig{})
	if !errors.Is(err, media.ErrUnsupported) {
		t.Errorf("PDF: %v, want ErrUnsupported", err)
	}
	// An animated WebP: VP8X with the animation bit, a 100×50 canvas and
	// an ANIM chunk. x/image decodes its size but not its frames.
	w := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x63\x00\x00\x31\x00\x00ANIM\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(w[4:], uint32(len(w)-8))
	img, err := media.Thumbnail(bytes.NewReader(w), media.ThumbConfig{})
	if err == nil || img.Type != "image/webp" || img.Width != 100 || img.Height != 50 || img.Thumb != nil {
		t.Errorf("animated WebP: %+v, %v; want its size and an error", img, err)
	}
}

// FuzzThumbnail checks that no input makes Thumbnail panic or decode past
// its bounds, and that what it returns is a JPEG within them.
func FuzzThumbnail(f *testing.F) {
	f.Add(encodePNG(f, gradient(3, 2)))
	f.Add(encodePNG(f, image.NewNRGBA(image.Rect(0, 0, 2, 2))))
	f.Add(encodeJPEG(f, gradient(9, 7)))
	f.Add(encodeGIF(f, 3, 3))
	f.Add(tinyWebP)
	for _, b := range bombs(f) {
		f.Add(b)
	}
	cfg := media.ThumbConfig{MaxPixels: 1 << 16, MaxInput: 1 << 20, ThumbSize: 32, MaxThumbBytes: 8 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := media.Thumbnail(bytes.NewReader(data), cfg)
		if err != nil {
			if img.Thumb != nil {
				t.Fatalf("error %v with a thumbnail", err)
			}
			return
		}
		if int64(img.Width)*int64(img.Height) > cfg.MaxPixels || img.Width <= 0 || img.Height <= 0 {
			t.Fatalf("decoded a %d×%d image", img.Width, img.Height)
		}
		if img.ThumbWidth > cfg.ThumbSize || img.ThumbHeight > cfg.ThumbSize || len(img.Thumb) > cfg.MaxThumbBytes {
			t.Fatalf("thumbnail %d×%d of %d bytes is out of bounds", img.ThumbWidth, img.ThumbHeight, len(img.Thumb))
		}
		if _, err := jpeg.Decode(bytes.NewReader(img.Thumb)); err != nil {
			t.Fatalf("thumbnail is not a JPEG: %v", err)
		}
	})
}
