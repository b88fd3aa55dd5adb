package proxy

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// maxAttrBytes bounds the connection-attribute block of a login: MariaDB and
// MySQL refuse a login whose attributes take more than 64 KiB.
const maxAttrBytes = 65535

// Attributes sqlwarden adds to every backend login. A client cannot set them.
const (
	attrIdentity = "sqlwarden_identity"
	attrSession  = "sqlwarden_session"
)

// backendAttrs returns the connection attributes of the backend login: the
// client's own, unchanged (so the server's processlist, performance_schema
// and audit plugins name the agent's program and library), and sqlwarden's.
// Client attributes that would take the block past maxAttrBytes are cut: the
// first that does not fit whole keeps what fits of its value, later ones
// (in name order) are dropped. A cut never fails the login.
func backendAttrs(clientAttrs map[string]string, identity, session string) map[string]string {
	out := map[string]string{attrSession: session}
	if identity != "" {
		out[attrIdentity] = identity
	}
	room := maxAttrBytes
	for k, v := range out {
		room -= attrLen(k, v)
	}
	keys := make([]string, 0, len(clientAttrs))
	for k := range clientAttrs {
		if !strings.HasPrefix(k, "sqlwarden_") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := clientAttrs[k]
		if n := attrLen(k, v); n <= room {
			out[k] = v
			room -= n
			continue
		}
		// Keep what fits of the value, on a character boundary.
		keep := room - attrLen(k, "") - 2 // a cut value of 251+ bytes has a 3-byte length
		if keep <= 0 {
			break
		}
		out[k] = cutRunes(v[:min(keep, len(v))])
		break
	}
	return out
}

// cutRunes drops an incomplete UTF-8 sequence that a cut left at the end
// of s; whatever else s holds stays as the client sent it.
func cutRunes(s string) string {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i]
			}
			break
		}
	}
	return s
}

// attrLen is the size of one attribute in the login packet: two
// length-encoded strings.
func attrLen(k, v string) int {
	return wire.LenEncIntSize(uint64(len(k))) + len(k) + wire.LenEncIntSize(uint64(len(v))) + len(v)
}
