package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// RowDigest hashes result rows so a replay can tell whether it got the same
// rows: SHA-256 over, per row, each value as 0xFF for NULL or a uvarint
// length and the value's text bytes, then a 0xFE row terminator. The proxy
// feeds it the (masked) values as the client received them, in text form.
type RowDigest struct {
	h    hash.Hash
	rows uint64
	tmp  [binary.MaxVarintLen64]byte
}

// NewRowDigest returns an empty digest.
func NewRowDigest() *RowDigest { return &RowDigest{h: sha256.New()} }

// AddRow adds one row; a nil value is SQL NULL.
func (d *RowDigest) AddRow(values [][]byte) {
	for _, v := range values {
		if v == nil {
			d.h.Write([]byte{0xFF})
			continue
		}
		n := binary.PutUvarint(d.tmp[:], uint64(len(v)))
		d.h.Write(d.tmp[:n])
		d.h.Write(v)
	}
	d.h.Write([]byte{0xFE})
	d.rows++
}

// Rows returns how many rows were added.
func (d *RowDigest) Rows() uint64 { return d.rows }

// Sum returns the hex digest.
func (d *RowDigest) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
