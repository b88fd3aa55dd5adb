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

// AddTextRow adds one text-protocol row packet payload (length-encoded
// strings, 0xfb for NULL), hashing exactly what AddRow would for the same
// values without allocating. It reports false for a malformed row.
func (d *RowDigest) AddTextRow(payload []byte) bool {
	for len(payload) > 0 {
		if payload[0] == 0xfb {
			d.h.Write([]byte{0xFF})
			payload = payload[1:]
			continue
		}
		var l uint64
		switch payload[0] {
		case 0xfc:
			if len(payload) < 3 {
				return false
			}
			l, payload = uint64(payload[1])|uint64(payload[2])<<8, payload[3:]
		case 0xfd:
			if len(payload) < 4 {
				return false
			}
			l, payload = uint64(payload[1])|uint64(payload[2])<<8|uint64(payload[3])<<16, payload[4:]
		case 0xfe:
			if len(payload) < 9 {
				return false
			}
			l, payload = binary.LittleEndian.Uint64(payload[1:]), payload[9:]
		case 0xff:
			return false
		default:
			l, payload = uint64(payload[0]), payload[1:]
		}
		if l > uint64(len(payload)) {
			return false
		}
		n := binary.PutUvarint(d.tmp[:], l)
		d.h.Write(d.tmp[:n])
		d.h.Write(payload[:l])
		payload = payload[l:]
	}
	d.h.Write([]byte{0xFE})
	d.rows++
	return true
}

// Reset empties the digest for reuse.
func (d *RowDigest) Reset() {
	d.h.Reset()
	d.rows = 0
}
