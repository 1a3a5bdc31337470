package wire

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestHexEncode32 holds the word-at-a-time hex encoder to encoding/hex.
func TestHexEncode32(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	sums := [][32]byte{{}, {0: 0xff, 31: 0x0a}}
	for range 200 {
		var s [32]byte
		for i := range s {
			s[i] = byte(rng.Uint32())
		}
		sums = append(sums, s)
	}
	for _, s := range sums {
		var got [64]byte
		hexEncode32(&got, &s)
		if want := hex.EncodeToString(s[:]); string(got[:]) != want {
			t.Fatalf("hexEncode32(%x) = %s", s, got)
		}
	}
}
