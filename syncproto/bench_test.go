package syncproto

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// benchFrames: a send with a 200-byte body, and a deliver of 10 messages.
func benchFrames() []struct {
	name string
	f    *syncpb.Frame
} {
	send := frame(12, &syncpb.SendRequest{
		ConvId: gTeam, ClientMsgId: "01J9Z8K6Q2-0042", Body: []byte(strings.Repeat("x", 200)), ContentType: "text/plain; charset=utf-8",
	})
	d := &syncpb.Deliver{}
	for i := range 10 {
		d.Messages = append(d.Messages, goldenMessage(gTeam, uint64(100+i), fmt.Sprintf("%03d %s", i, strings.Repeat("y", 60))))
	}
	return []struct {
		name string
		f    *syncpb.Frame
	}{{"send_200B", send}, {"deliver_10", frame(0, d)}}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, bf := range benchFrames() {
		b.Run(bf.name, func(b *testing.B) {
			buf, err := AppendFrame(nil, bf.f)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = AppendFrame(buf[:0], bf.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	for _, bf := range benchFrames() {
		b.Run(bf.name, func(b *testing.B) {
			buf, err := AppendFrame(nil, bf.f)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := DecodeFrame(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadFrame reads frames from a stream, as a session does.
func BenchmarkReadFrame(b *testing.B) {
	for _, bf := range benchFrames() {
		b.Run(bf.name, func(b *testing.B) {
			one, err := AppendFrame(nil, bf.f)
			if err != nil {
				b.Fatal(err)
			}
			stream := bytes.Repeat(one, 1000)
			r := bytes.NewReader(stream)
			fr := NewFrameReader(r, 0)
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == 1000 {
					r.Reset(stream)
					fr = NewFrameReader(r, 0)
					i = 0
				}
				if _, err := fr.ReadFrame(); err != nil && err != io.EOF {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
