package record

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
//
// The encoded stream is gathered in a small buffer and hashed a buffer at a
// time (values larger than the buffer go to the hash directly): a row costs
// a copy, not a hash call per value, and a result of a row or two is hashed
// only by Sum, which the proxy calls after the client has its reply. The
// hash and the buffer are allocated on first use: a connection that never
// reads a row does not carry them.
type RowDigest struct {
	h    hash.Hash
	b    *digestBuf
	n    int // bytes of b.buf not yet hashed
	rows uint64
}

type digestBuf struct {
	buf [512]byte // eight SHA-256 blocks; a point select's row fits
	sum [sha256.Size]byte
}

// NewRowDigest returns an empty digest.
func NewRowDigest() *RowDigest { return &RowDigest{} }

func (d *RowDigest) init() {
	d.h = sha256.New()
	d.b = new(digestBuf)
}

// AddRow adds one row; a nil value is SQL NULL.
func (d *RowDigest) AddRow(values [][]byte) {
	if d.h == nil {
		d.init()
	}
	for _, v := range values {
		if v == nil {
			d.writeByte(0xFF)
			continue
		}
		d.writeLen(uint64(len(v)))
		d.write(v)
	}
	d.writeByte(0xFE)
	d.rows++
}

func (d *RowDigest) flush() {
	if d.n > 0 {
		d.h.Write(d.b.buf[:d.n])
		d.n = 0
	}
}

func (d *RowDigest) write(p []byte) {
	if d.n+len(p) <= len(d.b.buf) {
		d.n += copy(d.b.buf[d.n:], p)
		return
	}
	d.flush()
	if len(p) >= len(d.b.buf) {
		d.h.Write(p)
		return
	}
	d.n = copy(d.b.buf[:], p)
}

func (d *RowDigest) writeByte(c byte) {
	if d.n == len(d.b.buf) {
		d.flush()
	}
	d.b.buf[d.n] = c
	d.n++
}

func (d *RowDigest) writeLen(l uint64) {
	if d.n+binary.MaxVarintLen64 > len(d.b.buf) {
		d.flush()
	}
	d.n += binary.PutUvarint(d.b.buf[d.n:], l)
}

// Rows returns how many rows were added.
func (d *RowDigest) Rows() uint64 { return d.rows }

// Sum returns the hex digest.
func (d *RowDigest) Sum() string {
	if d.h == nil {
		d.init()
	}
	d.flush()
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], d.h.Sum(d.b.sum[:0]))
	return string(out[:])
}

// AddTextRow adds one text-protocol row packet payload (length-encoded
// strings, 0xfb for NULL), hashing exactly what AddRow would for the same
// values without allocating. It reports false for a malformed row.
func (d *RowDigest) AddTextRow(payload []byte) bool {
	if d.h == nil {
		d.init()
	}
	for len(payload) > 0 {
		if payload[0] == 0xfb {
			d.writeByte(0xFF)
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
		d.writeLen(l)
		d.write(payload[:l])
		payload = payload[l:]
	}
	d.writeByte(0xFE)
	d.rows++
	return true
}

// Reset empties the digest for reuse.
func (d *RowDigest) Reset() {
	if d.h != nil {
		d.h.Reset()
	}
	d.rows = 0
	d.n = 0
}
