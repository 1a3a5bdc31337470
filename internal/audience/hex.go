package audience

import (
	"encoding/binary"
	"strings"
)

// hex hex-encodes every hash of the last Map once, into one string per
// worker that all changes and chunks of that Map share.
func (m *Mapper) hex() *hexTable {
	if !m.hexed {
		sums := m.p.sums // not split: m.p's are all of them
		cut := len(sums)
		if m.workers(len(sums)) == 2 {
			cut = len(sums) / 2
		}
		m.hexes.cut = int32(cut)
		parallel(m.workers(len(sums)), func(w int) {
			if w == 0 {
				m.hexes.half[0] = hexSums(sums[:cut])
			} else {
				m.hexes.half[1] = hexSums(sums[cut:])
			}
		})
		m.hexed = true
	}
	return &m.hexes
}

// hexTable is the hex of a run of hashes: hashes [0, cut) in half[0], the
// rest in half[1].
type hexTable struct {
	half [2]string
	cut  int32
}

// of is the hex of hash sum. Which half holds it is as good as random, so
// it is chosen without a branch.
func (h *hexTable) of(sum int32) string {
	k := int32(0)
	if sum >= h.cut {
		k = 1
	}
	off := 64 * int(sum-k*h.cut)
	return h.half[k][off : off+64]
}

// hexSums encodes sums as one string of 64 lowercase hex digits each,
// a block at a time through the stack, so the string is written once.
func hexSums(sums [][32]byte) string {
	var sb strings.Builder
	sb.Grow(64 * len(sums))
	var block [64 * 64]byte
	for len(sums) > 0 {
		n := min(len(sums), 64)
		hexInto(block[:64*n], sums[:n])
		sb.Write(block[:64*n])
		sums = sums[n:]
	}
	return sb.String()
}

// hexInto encodes sums into dst, 64 bytes each.
func hexInto(dst []byte, sums [][32]byte) {
	for k := range sums {
		hexEncode32((*[64]byte)(dst[64*k:]), &sums[k])
	}
}

// hexEncode32 writes sum as 64 lowercase hex digits, four bytes at a time:
// the eight nibbles are spread to a byte each (most significant first), then
// each becomes '0'+v, plus 39 more when v ≥ 10 (to reach 'a'); v+6 carries
// into bit 4 exactly then. No byte overflows into the next.
func hexEncode32(dst *[64]byte, sum *[32]byte) {
	for k := 0; k < 32; k += 4 {
		x := uint64(binary.BigEndian.Uint32(sum[k:]))
		x = (x | x<<16) & 0x0000ffff0000ffff
		x = (x | x<<8) & 0x00ff00ff00ff00ff
		x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
		binary.BigEndian.PutUint64(dst[2*k:], x+0x3030303030303030+((x+0x0606060606060606)>>4&0x0101010101010101)*39)
	}
}
