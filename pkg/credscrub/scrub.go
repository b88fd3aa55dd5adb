package credscrub

import (
	"bytes"
	"fmt"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// Redacted replaces every secret literal.
const Redacted = "'<secret>'"

// IsCredentialColumn reports whether a result column is the one column of
// SHOW GRANTS ("Grants for user@host") or SHOW CREATE USER ("CREATE USER
// for user@host") output, on MariaDB and MySQL.
func IsCredentialColumn(name []byte) bool {
	return hasPrefixFold(name, "Grants for ") || hasPrefixFold(name, "CREATE USER for ")
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}

// Scrub appends to dst the statement text s with every literal that follows
// the keywords PASSWORD, USING or AS replaced by Redacted: the forms in
// which servers print credentials —
//
//	IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'
//	IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'
//	IDENTIFIED VIA mysql_native_password USING '*...' OR unix_socket
//	IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$...'
//	IDENTIFIED WITH 'caching_sha2_password' AS 0x244124303035...
//
// Identifiers (`...`, "...") are never read as keywords. changed reports
// whether anything was replaced; when not, dst is returned as given.
func Scrub(s, dst []byte) (out []byte, changed bool) {
	secretNext := false // the previous word was PASSWORD, USING or AS
	inSecret := false   // only blanks since a redacted literal
	last := 0           // s[last:i] is not yet copied
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '`' || c == '"':
			i = quotedEnd(s, i)
			secretNext, inSecret = false, false
			continue
		case c == '\'' || ((c == 'x' || c == 'X') && i+1 < len(s) && s[i+1] == '\''):
			q := i
			if c != '\'' {
				q++
			}
			end := quotedEnd(s, q)
			dst, last, inSecret, changed = literal(s, dst, i, end, last, secretNext || inSecret, inSecret, changed)
			i = end
			secretNext = false
			continue
		case c == '0' && i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && isHex(s[i+2]):
			end := i + 2
			for end < len(s) && isHex(s[end]) {
				end++
			}
			dst, last, inSecret, changed = literal(s, dst, i, end, last, secretNext || inSecret, inSecret, changed)
			i = end
			secretNext = false
			continue
		case isWord(c):
			end := i
			for end < len(s) && isWord(s[end]) {
				end++
			}
			w := s[i:end]
			secretNext = bytes.EqualFold(w, []byte("PASSWORD")) || bytes.EqualFold(w, []byte("USING")) || bytes.EqualFold(w, []byte("AS"))
			inSecret = false
			i = end
			continue
		}
		secretNext, inSecret = false, false
		i++
	}
	if !changed {
		return dst, false
	}
	return append(dst, s[last:]...), true
}

// literal handles the literal s[i:end]: a secret one is replaced by
// Redacted, and literals right after a redacted one (SQL concatenates
// adjacent string literals) are swallowed into the same redaction.
func literal(s, dst []byte, i, end, last int, secret, extend, changed bool) ([]byte, int, bool, bool) {
	switch {
	case extend:
		return dst, end, true, changed
	case secret:
		return append(append(dst, s[last:i]...), Redacted...), end, true, true
	}
	return dst, last, false, changed
}

// quotedEnd returns the offset just past the quoted token starting at
// s[i] (a quote, backtick or double quote), honouring doubled quotes and,
// for strings, backslash escapes. An unterminated token runs to the end.
func quotedEnd(s []byte, i int) int {
	q := s[i]
	j := i + 1
	for j < len(s) {
		switch {
		case s[j] == '\\' && q != '`':
			j += 2
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			return j + 1
		default:
			j++
		}
	}
	return len(s)
}

func isWord(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Editor scrubs the values of a result set's credential column, for a
// rows.Rewriter. Count is how many values it changed.
type Editor struct{ Count uint64 }

// Text implements rows.Editor.
func (e *Editor) Text(_ int, val, dst []byte) ([]byte, rows.Action, error) {
	out, changed := Scrub(val, dst)
	if !changed {
		return out, rows.Keep, nil
	}
	e.Count++
	return out, rows.Replace, nil
}

// Binary implements rows.Editor: the value is a length-encoded string.
func (e *Editor) Binary(_ int, enc, dst []byte) ([]byte, rows.Action, error) {
	val, null, n, ok := wire.LenEncString(enc)
	if !ok || n != len(enc) {
		return nil, rows.Keep, fmt.Errorf("decode credential column: %w", wire.ErrMalformed)
	}
	if null {
		return dst, rows.Keep, nil
	}
	scrubbed, changed := Scrub(val, nil)
	if !changed {
		return dst, rows.Keep, nil
	}
	e.Count++
	return wire.AppendLenEncString(dst, scrubbed), rows.Replace, nil
}
