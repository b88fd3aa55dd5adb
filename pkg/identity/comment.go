package identity

import (
	"net/url"
	"strings"
)

// Limits on what a SQL comment can contribute: it is the agent's own word.
const (
	maxCommentLen   = 8 << 10
	maxCommentPairs = 64
)

// ParseSQLComment returns the sqlcommenter key='value' pairs of a statement's
// trailing (or, failing that, leading) comment, keys and values URL-decoded.
// MySQL executable comments and optimizer hints are not sqlcommenter. It
// returns nil when there is nothing to read, and never panics.
func ParseSQLComment(sql string) map[string]string {
	body, ok := trailingComment(sql)
	if !ok {
		body, ok = leadingComment(sql)
	}
	if !ok || len(body) > maxCommentLen {
		return nil
	}
	if strings.HasPrefix(body, "!") || strings.HasPrefix(body, "+") {
		return nil
	}
	return parsePairs(body)
}

func trailingComment(sql string) (string, bool) {
	s := strings.TrimRight(sql, " \t\r\n;")
	if !strings.HasSuffix(s, "*/") {
		return "", false
	}
	s = s[:len(s)-2]
	i := strings.LastIndex(s, "/*")
	if i < 0 {
		return "", false
	}
	return s[i+2:], true
}

func leadingComment(sql string) (string, bool) {
	s := strings.TrimLeft(sql, " \t\r\n")
	if !strings.HasPrefix(s, "/*") {
		return "", false
	}
	s = s[2:]
	i := strings.Index(s, "*/")
	if i < 0 {
		return "", false
	}
	return s[:i], true
}

// parsePairs reads key='value'(,key='value')*; a syntax error ends the
// parse, keeping the pairs before it.
func parsePairs(s string) map[string]string {
	var out map[string]string
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
			i++
		}
	}
	for len(out) < maxCommentPairs {
		skipSpace()
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != '\'' {
			i++
		}
		key := strings.TrimSpace(s[start:i])
		if i >= len(s) || s[i] != '=' || key == "" {
			return out
		}
		i++ // '='
		skipSpace()
		if i >= len(s) || s[i] != '\'' {
			return out
		}
		i++ // opening quote
		var val strings.Builder
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				val.WriteByte(s[i+1])
				i += 2
				continue
			}
			if c == '\'' {
				closed = true
				i++
				break
			}
			val.WriteByte(c)
			i++
		}
		if !closed {
			return out
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[unescape(key)] = unescape(val.String())
		skipSpace()
		if i >= len(s) || s[i] != ',' {
			return out
		}
		i++
	}
	return out
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
