package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// The hash chain.
//
// A journal line is the record's JSON encoding (fields in struct order,
// HTML escaping off) whose last two members are "prev_hash" and "hash":
//
//	{"ts":...,"seq":7,...,"prev_hash":"<64 hex>","hash":"<64 hex>"}\n
//
// The canonical bytes of a record are the line without its trailing
// `,"hash":"<64 hex>"` member and newline, i.e. the encoding with the hash
// field empty and prev_hash set. hash = hex(SHA-256(canonical bytes)); since
// the canonical bytes contain prev_hash, every hash covers the previous one.
// Verification works on the bytes as stored, never on a re-encoding, so any
// changed byte is detected. The first record of a journal has prev_hash
// GenesisHash; the first record of a later segment has the previous
// segment's last hash as prev_hash.

// GenesisHash is the prev_hash of a journal's first record.
var GenesisHash = strings.Repeat("0", 64)

const hashSuffixLen = len(`,"hash":"`) + 64 + len(`"}`)

var (
	seqZero       = []byte(`,"seq":0`)
	hashPrefix    = []byte(`,"hash":"`)
	prevHashKey   = []byte(`,"prev_hash":"`)
	errNoHash     = errors.New("line does not end with a hash member")
	errBadHashHex = errors.New("hash is not 64 lowercase hex digits")
)

// SplitLine separates a journal line (without its newline) into its canonical
// bytes and the hash it claims.
func SplitLine(line []byte) (canonical []byte, hash string, err error) {
	n := len(line)
	if n < hashSuffixLen+2 || line[n-1] != '}' || line[n-2] != '"' {
		return nil, "", errNoHash
	}
	suffix := line[n-hashSuffixLen:]
	if !bytes.HasPrefix(suffix, hashPrefix) {
		return nil, "", errNoHash
	}
	h := suffix[len(hashPrefix) : len(hashPrefix)+64]
	if !isHex(h) {
		return nil, "", errBadHashHex
	}
	canonical = make([]byte, 0, n-hashSuffixLen+1)
	canonical = append(canonical, line[:n-hashSuffixLen]...)
	canonical = append(canonical, '}')
	return canonical, string(h), nil
}

// ComputeHash returns the hex SHA-256 of canonical bytes.
func ComputeHash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// CheckLine verifies that a line's claimed hash matches its canonical bytes
// and decodes it.
func CheckLine(line []byte) (*record.Record, error) {
	canonical, h, err := SplitLine(line)
	if err != nil {
		return nil, err
	}
	if got := ComputeHash(canonical); got != h {
		return nil, fmt.Errorf("hash mismatch: line says %s, content hashes to %s", short(h), short(got))
	}
	return DecodeLine(line)
}

// DecodeLine decodes one journal line into a Record. Numbers inside
// free-form values (params, results, claims) decode as json.Number so that
// 64-bit integers survive.
func DecodeLine(line []byte) (*record.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	r := new(record.Record)
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode record: trailing data")
	}
	return r, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// encodeBody encodes r with Seq 0 and no prev_hash/hash; the journal splices
// the real seq and prev_hash in under its lock (see appendLocked).
func encodeBody(buf *bytes.Buffer, r *record.Record) ([]byte, error) {
	seq, prev, h := r.Seq, r.PrevHash, r.Hash
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	// The hot records (statement, outcome, session.end) skip reflection.
	if b, ok := appendRecordJSON(buf.AvailableBuffer(), r); ok {
		r.Seq, r.PrevHash, r.Hash = seq, prev, h
		buf.Write(b)
		return buf.Bytes(), nil
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(r)
	r.Seq, r.PrevHash, r.Hash = seq, prev, h
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encode's newline
	if bytes.IndexByte(b, '\n') >= 0 {
		return nil, fmt.Errorf("encode record: newline in encoding")
	}
	return b, nil
}

// spliceInto appends to dst the canonical bytes of body with seq and prev
// set, returning the extended slice.
func spliceInto(dst, body []byte, seq uint64, prev string) ([]byte, error) {
	i := bytes.Index(body, seqZero)
	if i < 0 || len(body) < i+len(seqZero)+1 {
		return dst, fmt.Errorf("encode record: seq member not found")
	}
	rest := body[i+len(seqZero):]
	if rest[0] != ',' && rest[0] != '}' {
		return dst, fmt.Errorf("encode record: seq member malformed")
	}
	dst = append(dst, body[:i]...)
	dst = append(dst, `,"seq":`...)
	dst = appendUint(dst, seq)
	dst = append(dst, rest[:len(rest)-1]...) // without the closing brace
	dst = append(dst, prevHashKey...)
	dst = append(dst, prev...)
	dst = append(dst, '"', '}')
	return dst, nil
}

// appendHashSuffix turns canonical bytes ending in '}' (the tail of dst) into
// a full line: `,"hash":"<h>"}` and a newline.
func appendHashSuffix(dst []byte, sum [32]byte) []byte {
	dst = dst[:len(dst)-1]
	dst = append(dst, hashPrefix...)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	dst = append(dst, hx[:]...)
	dst = append(dst, '"', '}', '\n')
	return dst
}

func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
