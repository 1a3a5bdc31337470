package wire

import "encoding/binary"

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
