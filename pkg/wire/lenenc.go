package wire

// Bounds-checked length-encoded integer and string readers. go-mysql's
// helpers index past short input, which a proxy reading untrusted packets
// cannot afford; these return ok=false instead.

// LenEncInt decodes a length-encoded integer. null reports the 0xfb marker.
// The one-byte form, nearly every integer in a row, is decided first.
func LenEncInt(b []byte) (v uint64, null bool, n int, ok bool) {
	if len(b) > 0 && b[0] < 0xfb {
		return uint64(b[0]), false, 1, true
	}
	return lenEncIntLong(b)
}

// lenEncIntLong decodes every form; LenEncInt comes here for all but the
// one-byte form.
func lenEncIntLong(b []byte) (v uint64, null bool, n int, ok bool) {
	if len(b) == 0 {
		return 0, false, 0, false
	}
	switch b[0] {
	case 0xfb:
		return 0, true, 1, true
	case 0xfc:
		if len(b) < 3 {
			return 0, false, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8, false, 3, true
	case 0xfd:
		if len(b) < 4 {
			return 0, false, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, false, 4, true
	case 0xfe:
		if len(b) < 9 {
			return 0, false, 0, false
		}
		var v uint64
		for i := 8; i >= 1; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v, false, 9, true
	case 0xff:
		return 0, false, 0, false
	}
	return uint64(b[0]), false, 1, true
}

// LenEncString decodes a length-encoded string; s aliases b. A string
// shorter than 251 bytes and NULL, nearly every value in a row, are decided
// first.
func LenEncString(b []byte) (s []byte, null bool, n int, ok bool) {
	if len(b) > 0 {
		switch c := b[0]; {
		case c < 0xfb && int(c) < len(b):
			end := 1 + int(c)
			return b[1:end:end], false, end, true
		case c == 0xfb: // NULL in a text row
			return nil, true, 1, true
		}
	}
	return lenEncStringLong(b)
}

// lenEncStringLong decodes every form; LenEncString comes here for strings
// of 251 bytes or more and for malformed input.
func lenEncStringLong(b []byte) (s []byte, null bool, n int, ok bool) {
	v, null, n, ok := lenEncIntLong(b)
	if !ok || null {
		return nil, null, n, ok
	}
	if v > uint64(len(b)-n) {
		return nil, false, 0, false
	}
	end := n + int(v)
	return b[n:end:end], false, end, true
}

// AppendLenEncInt appends v length-encoded.
func AppendLenEncInt(b []byte, v uint64) []byte {
	switch {
	case v < 251:
		return append(b, byte(v))
	case v <= 0xffff:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v <= 0xffffff:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return append(b, 0xfe, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

// LenEncIntSize is how many bytes AppendLenEncInt writes for v.
func LenEncIntSize(v uint64) int {
	switch {
	case v < 251:
		return 1
	case v <= 0xffff:
		return 3
	case v <= 0xffffff:
		return 4
	}
	return 9
}

// AppendLenEncString appends s length-encoded.
func AppendLenEncString(b, s []byte) []byte {
	return append(AppendLenEncInt(b, uint64(len(s))), s...)
}

// cstring reads a NUL-terminated string.
func cstring(b []byte) (s []byte, n int, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], i + 1, true
		}
	}
	return nil, 0, false
}
