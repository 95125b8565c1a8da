package blobtest

import "io"

// Pattern returns a reader of n bytes that repeats a 64 KiB pseudo-random
// block with each repetition's first bytes set to its index, so large
// streams cost no memory and different offsets read different bytes.
func Pattern(seed uint64, n int64) io.Reader {
	return &pattern{block: Data(seed, 64<<10), n: n}
}

type pattern struct {
	block []byte
	off   int64
	n     int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rest := p.n - p.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	bs := int64(len(p.block))
	total := 0
	for len(b) > 0 {
		i := p.off % bs
		k := copy(b, p.block[i:])
		// Stamp the block number into its first 8 bytes.
		rep := p.off / bs
		for j := int64(0); j < int64(k) && i+j < 8; j++ {
			b[j] = byte(rep >> (8 * (i + j)))
		}
		b = b[k:]
		p.off += int64(k)
		total += k
	}
	return total, nil
}
