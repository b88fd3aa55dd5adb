package rows

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error about bytes that do not follow the protocol.
var ErrMalformed = errors.New("malformed packet")

// ReadLenEnc decodes a length-encoded integer at row[pos:]. null reports the
// 0xFB marker (a NULL in a text row); next is the offset after the integer.
func ReadLenEnc(row []byte, pos int) (v uint64, null bool, next int, err error) {
	if pos >= len(row) {
		return 0, false, pos, fmt.Errorf("read length-encoded integer at %d: %w", pos, ErrMalformed)
	}
	b := row[pos]
	switch {
	case b < 0xfb:
		return uint64(b), false, pos + 1, nil
	case b == 0xfb:
		return 0, true, pos + 1, nil
	case b == 0xfc:
		if pos+3 > len(row) {
			break
		}
		return uint64(row[pos+1]) | uint64(row[pos+2])<<8, false, pos + 3, nil
	case b == 0xfd:
		if pos+4 > len(row) {
			break
		}
		return uint64(row[pos+1]) | uint64(row[pos+2])<<8 | uint64(row[pos+3])<<16, false, pos + 4, nil
	case b == 0xfe:
		if pos+9 > len(row) {
			break
		}
		var v uint64
		for i := 0; i < 8; i++ {
			v |= uint64(row[pos+1+i]) << (8 * i)
		}
		return v, false, pos + 9, nil
	}
	return 0, false, pos, fmt.Errorf("read length-encoded integer 0x%02x at %d: %w", b, pos, ErrMalformed)
}

// ReadLenEncString returns the length-encoded string at row[pos:] without copying.
func ReadLenEncString(row []byte, pos int) (s []byte, null bool, next int, err error) {
	n, null, next, err := ReadLenEnc(row, pos)
	if err != nil || null {
		return nil, null, next, err
	}
	if n > uint64(len(row)-next) {
		return nil, false, pos, fmt.Errorf("read string of %d bytes at %d: %w", n, pos, ErrMalformed)
	}
	end := next + int(n)
	return row[next:end:end], false, end, nil
}

// AppendLenEnc appends v as a length-encoded integer.
func AppendLenEnc(dst []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(dst, byte(v))
	case v <= 0xffff:
		return append(dst, 0xfc, byte(v), byte(v>>8))
	case v <= 0xffffff:
		return append(dst, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return append(dst, 0xfe, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
		byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

// AppendLenEncString appends s with its length prefix.
func AppendLenEncString(dst, s []byte) []byte {
	return append(AppendLenEnc(dst, uint64(len(s))), s...)
}
