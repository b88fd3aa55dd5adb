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
			d.Null()
			continue
		}
		d.Value(v)
	}
	d.EndRow()
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

// Value adds one non-NULL value of the current row; Null adds a NULL and
// EndRow ends the row. They hash exactly what AddRow would for the same
// values, without allocating: the proxy walks a text row packet with
// wire/rows.EachText (this package decodes no wire protocol) and hands each
// value here.
func (d *RowDigest) Value(v []byte) {
	if d.h == nil {
		d.init()
	}
	d.writeLen(uint64(len(v)))
	d.write(v)
}

// Null adds a NULL value to the current row.
func (d *RowDigest) Null() {
	if d.h == nil {
		d.init()
	}
	d.writeByte(0xFF)
}

// EndRow ends the current row.
func (d *RowDigest) EndRow() {
	if d.h == nil {
		d.init()
	}
	d.writeByte(0xFE)
	d.rows++
}

// Reset empties the digest for reuse.
func (d *RowDigest) Reset() {
	if d.h != nil {
		d.h.Reset()
	}
	d.rows = 0
	d.n = 0
}
