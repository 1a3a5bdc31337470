package audience

import (
	"encoding/binary"
	"strings"
)

// hex hex-encodes every hash of the last Map once, into strings that all
// changes and chunks of that Map share.
func (m *Mapper) hex() *hexTable {
	if !m.hexed {
		// A split body has its hex from the parse already; this is for
		// the others (and holds for both).
		h := hexTable{cut: int32(len(m.parts[0].sums))}
		for k, pt := range m.parts {
			h.half[k] = hexSums(pt.sums)
		}
		m.hexes, m.hexed = h, true
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

// hexEncode32 writes sum as 64 lowercase hex digits: each byte's two
// digits come from a 256-entry table, four bytes' worth stored at once.
func hexEncode32(dst *[64]byte, sum *[32]byte) {
	for k := 0; k < 32; k += 4 {
		v := uint64(hexPairs[sum[k]]) | uint64(hexPairs[sum[k+1]])<<16 |
			uint64(hexPairs[sum[k+2]])<<32 | uint64(hexPairs[sum[k+3]])<<48
		binary.LittleEndian.PutUint64(dst[2*k:], v)
	}
}

// hexPairs holds each byte's two hex digits, the first in the low byte.
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for b := range t {
		t[b] = uint16(digits[b>>4]) | uint16(digits[b&15])<<8
	}
	return t
}()
