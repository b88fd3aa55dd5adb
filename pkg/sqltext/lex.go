package sqltext

import (
	"fmt"
	"strings"
	"unsafe"
)

// RefusedError says why a statement's text cannot be judged: the server
// would read it in a way the parser cannot be made to follow, or in a way
// this package cannot decide. Reason is fit for the client.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Executable returns sql as server d will run it, in a form a parser that
// knows nothing of comments, versions or character sets reads the same way
// (given d's sql_mode flags): the marker of an executable comment the server
// runs (/*! ... */, /*!NNNNN ... */, MariaDB's /*M!NNNNNN ... */) is
// replaced by spaces and its content kept; every comment the server ignores
// (plain, versioned for another version, TiDB's /*T! ... */, optimizer
// hints, # and -- comments) is replaced by spaces entirely. The result has
// the same length as sql. Text whose reading cannot be decided — a comment
// nested in an executable one, an unterminated quote or comment, a NUL
// byte outside a string, a byte >= 0x80 outside quotes in a session whose
// character set is not UTF-8 — is a *RefusedError.
//
// Text without comments is returned as is, after one scan and no allocation.
func Executable(sql string, d Dialect) (string, error) {
	l := lexer{s: sql, d: d}
	if err := l.run(); err != nil {
		return "", err
	}
	if l.buf == nil {
		return sql, nil
	}
	return unsafe.String(unsafe.SliceData(l.buf), len(l.buf)), nil
}

// ExecutableInto is Executable with a changed text built in buf (grown as
// needed, returned for reuse) instead of a new allocation. The text it
// returns is then buf's bytes: it is valid only until buf is written again,
// so a caller that keeps it must copy it.
func ExecutableInto(buf []byte, sql string, d Dialect) (string, []byte, error) {
	l := lexer{s: sql, d: d, scratch: buf}
	if err := l.run(); err != nil {
		return "", buf, err
	}
	if l.buf == nil {
		return sql, buf, nil
	}
	return unsafe.String(unsafe.SliceData(l.buf), len(l.buf)), l.buf, nil
}

type lexer struct {
	s       string
	d       Dialect
	buf     []byte // a copy of s being blanked, nil while nothing changed
	scratch []byte // where buf is made (nil: a new allocation)
	err     error
}

// blank replaces s[a:b] by spaces in the output. Right after "--" that
// would make a comment the server does not see ("--/* x */ 1" is minus
// minus one to it): refused.
func (l *lexer) blank(a, b int) {
	if a >= 2 && l.s[a-1] == '-' && l.s[a-2] == '-' && l.err == nil {
		l.err = refuse("a comment right after -- is not supported")
	}
	if l.buf == nil {
		l.buf = append(l.scratch[:0], l.s...)
	}
	for k := a; k < b; k++ {
		l.buf[k] = ' '
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isSpaceOrCtrl is the server's my_isspace || my_iscntrl for the byte after
// "--": a space, a tab, a line break or any other control character.
func isSpaceOrCtrl(c byte) bool { return c <= ' ' || c == 0x7f }

// isSpace is the server's my_isspace for ASCII.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

func (l *lexer) run() error {
	s := l.s
	inExec := false // inside the content of an executable comment
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\'':
			j, err := l.quoted(i, !l.backslashes())
			if err != nil {
				return err
			}
			i = j
		case '"':
			var j int
			var err error
			if l.d.Mode&ANSIQuotes != 0 {
				j, err = l.quotedIdent(i)
				if err == nil {
					err = l.backtick(i, j)
				}
			} else {
				j, err = l.quoted(i, !l.backslashes())
			}
			if err != nil {
				return err
			}
			i = j
		case '`':
			j, err := l.quotedIdent(i)
			if err != nil {
				return err
			}
			i = j
		case '#':
			j, err := l.lineComment(i)
			if err != nil {
				return err
			}
			i = j
		case '-':
			if i+1 < len(s) && s[i+1] == '-' {
				if i+2 < len(s) && s[i+2] >= 0x80 {
					return refuse("cannot tell whether -- followed by byte 0x%02x is a comment", s[i+2])
				}
				if i+2 == len(s) || isSpaceOrCtrl(s[i+2]) {
					j, err := l.lineComment(i)
					if err != nil {
						return err
					}
					i = j
					continue
				}
			}
			i++
		case '/':
			if i+1 < len(s) && s[i+1] == '*' {
				if inExec {
					return refuse("a comment inside an executable comment is not supported")
				}
				j, exec, err := l.blockComment(i)
				if err != nil {
					return err
				}
				inExec = exec
				i = j
				continue
			}
			i++
		case '*':
			if inExec && i+1 < len(s) && s[i+1] == '/' {
				l.blank(i, i+2)
				inExec = false
				i += 2
				continue
			}
			i++
		case 0:
			return refuse("NUL byte outside a quoted string")
		case '$':
			if l.d.Flavor == MySQL && l.d.Version >= 90000 && (i == 0 || !isIdentByte(s[i-1])) {
				return refuse("$ at the start of a token is not supported on MySQL 9 (dollar-quoted text)")
			}
			i++
		default:
			if c >= 0x80 && l.d.Charset != CharsetUTF8 {
				return refuse("byte 0x%02x outside quotes in a session whose character set is not UTF-8", c)
			}
			i++
		}
	}
	if inExec {
		return refuse("unterminated executable comment")
	}
	return l.err
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '_' || c == '$' || c >= 0x80
}

func (l *lexer) backslashes() bool { return l.d.Mode&NoBackslashEscapes == 0 }

// quoted skips a string literal starting at s[i] (its quote): a backslash
// escapes the next byte unless NO_BACKSLASH_ESCAPES, and a doubled quote is
// one quote. It returns the index after the closing quote.
func (l *lexer) quoted(i int, noBackslash bool) (int, error) {
	s, q := l.s, l.s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if !noBackslash {
				j++ // the escaped byte; past the end is unterminated
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, refuse("unterminated quoted string")
}

// quotedIdent skips a quoted identifier (`x`, or "x" under ANSI_QUOTES); a
// doubled quote is one quote, a backslash is an ordinary byte.
func (l *lexer) quotedIdent(i int) (int, error) {
	s, q := l.s, l.s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case 0:
			return 0, refuse("NUL byte in a quoted identifier")
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, refuse("unterminated quoted identifier")
}

// backtick rewrites the "..." identifier s[i:j] (ANSI_QUOTES) as a
// `...` one, padded with spaces to the same length: a parser that reads
// "..." as a string first would take a backslash in it for an escape,
// where the server's identifier has none.
func (l *lexer) backtick(i, j int) error {
	content := l.s[i+1 : j-1]
	if strings.IndexByte(content, '`') >= 0 {
		return refuse("a backtick inside a double-quoted identifier is not supported")
	}
	if l.buf == nil {
		l.buf = append(l.scratch[:0], l.s...)
	}
	k := i
	l.buf[k] = '`'
	k++
	for m := 0; m < len(content); m++ {
		l.buf[k] = content[m]
		k++
		if content[m] == '"' {
			m++ // a doubled quote is one quote
		}
	}
	l.buf[k] = '`'
	for k++; k < j; k++ {
		l.buf[k] = ' '
	}
	return nil
}

// lineComment blanks a # or -- comment starting at s[i], up to the line end.
func (l *lexer) lineComment(i int) (int, error) {
	s := l.s
	j := i
	for j < len(s) && s[j] != '\n' {
		if s[j] == 0 {
			return 0, refuse("NUL byte in a comment")
		}
		j++
	}
	l.blank(i, j)
	return j, nil
}

// blockComment handles a comment starting at s[i] ("/*"). It returns the
// index to continue at and whether the content that follows is SQL the
// server runs (an executable comment whose marker was blanked).
func (l *lexer) blockComment(i int) (int, bool, error) {
	s := l.s
	p := i + 2
	switch {
	case p < len(s) && s[p] == '!':
		return l.versioned(i, p+1, false)
	case l.d.Flavor == MariaDB && p+1 < len(s) && s[p] == 'M' && s[p+1] == '!':
		return l.versioned(i, p+2, true)
	}
	end := strings.Index(s[p:], "*/")
	if end < 0 {
		return 0, false, refuse("unterminated comment")
	}
	l.blank(i, p+end+2)
	return p + end + 2, false, nil
}

// versioned handles /*! and /*M! comments; p is where the version digits
// would start.
func (l *lexer) versioned(i, p int, maria bool) (int, bool, error) {
	s := l.s
	digits := 0
	for digits < 7 && p+digits < len(s) && isDigit(s[p+digits]) {
		digits++
	}
	n := 0 // version digits the server consumes
	run := true
	if digits >= 5 {
		n = 5
		switch l.d.Flavor {
		case MariaDB:
			// Five digits, or six when a sixth follows; whatever comes after
			// is content.
			if digits >= 6 {
				n = 6
			}
		case MySQL:
			// MySQL 8.4 and later read six digits followed by a space as a
			// version; earlier releases read five. In between, refuse.
			if digits == 6 && p+6 < len(s) && isSpace(s[p+6]) {
				if l.d.Version < 80400 {
					return 0, false, refuse("six-digit version comments are not supported on %s", l.d.Server)
				}
				n = 6
			}
		default:
			return 0, false, refuse("versioned comment for an unknown server")
		}
		if l.d.Version == 0 {
			return 0, false, refuse("versioned comment while the server version is unknown")
		}
		v := uint32(0)
		for k := 0; k < n; k++ {
			v = v*10 + uint32(s[p+k]-'0')
		}
		run = v <= l.d.Version
		if l.d.Flavor == MariaDB && !maria && v >= 50700 && v <= 99999 {
			run = false // MariaDB ignores MySQL 5.7+ versioned comments
		}
	}
	if run {
		l.blank(i, p+n)
		return p + n, true, nil
	}
	// Skipped: the server scans for the closing */ allowing one level of
	// nested /* ... */ and reads nothing inside as SQL.
	for j := p; j < len(s); j++ {
		switch {
		case s[j] == '/' && j+1 < len(s) && s[j+1] == '*':
			end := strings.Index(s[j+2:], "*/")
			if end < 0 {
				return 0, false, refuse("unterminated comment")
			}
			j = j + 2 + end + 1 // at the '/' of the nested comment's end
		case s[j] == '*' && j+1 < len(s) && s[j+1] == '/':
			l.blank(i, j+2)
			return j + 2, false, nil
		}
	}
	return 0, false, refuse("unterminated comment")
}
