package sqltext

// AppendShape appends the shape of text to dst: text with the value of
// every literal the shape can be sure of erased — a string literal becomes
// its two quotes, a run of digits byte 0, a decimal (digits, a point,
// digits) byte 1 — and every other byte kept as it is, case and spaces
// included.
// text must be what Executable returned for d (comments blanked).
//
// Two texts with the same shape are the same tokens with different literal
// values: whatever reads them (the server, the parser, the normalizer behind
// a statement's digest) reads them alike but for those values. The shape is
// finer than the normalizer's digest, never coarser: where the normalizer
// keeps a number (ORDER BY 1, GROUP BY 2) the shape keeps it too, and a
// digit run that may be part of a name (t.1, @1, 1e5, 1abc) stays as it is.
// Building it allocates nothing beyond dst's growth.
//
// ok is false under ANSI_QUOTES or NO_BACKSLASH_ESCAPES (strings are read
// differently there; callers do not share judgements then) and for text
// that has an unterminated quote.
func AppendShape(dst []byte, text string, d Dialect) ([]byte, bool) {
	return shape(dst, text, d, nil)
}

// Literal kinds reported to shape's span callback.
const (
	spanString  = 's'
	spanNumber  = 'n' // digits
	spanDecimal = 'd' // digits, a point and digits
)

// shape is AppendShape; span, when set, is told where each erased literal
// was in text (for tests).
func shape(dst []byte, s string, d Dialect, span func(kind byte, start, end int)) ([]byte, bool) {
	if d.Mode&LexMode != 0 {
		return dst, false
	}
	l := lexer{s: s, d: d}
	var (
		sawBy  bool // the word BY has been seen: ORDER BY / GROUP BY lists may follow
		lastBy bool // the last token was the word BY
		last   byte // the last byte emitted that is not a space
	)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j, err := l.quoted(i, false)
			if err != nil {
				return dst, false
			}
			if !erasable(s, i) || wordLike(s[i+1:j-1], c) {
				dst = append(dst, s[i:j]...)
				last, lastBy = c, false
				i = j
				continue
			}
			if nameLike(s, i) {
				// A string that may be a name (an alias another part of
				// the statement refers to): two texts that differ in it do
				// not mean the same, and nothing is shared.
				return dst, false
			}
			if span != nil {
				span(spanString, i, j)
			}
			dst = append(dst, c, c)
			last, lastBy = c, false
			i = j
		case c == '`':
			j, err := l.quotedIdent(i)
			if err != nil {
				return dst, false
			}
			dst = append(dst, s[i:j]...)
			// `by` is the word BY to the normalizer.
			lastBy = j-i == 4 && (s[i+1]|0x20) == 'b' && (s[i+2]|0x20) == 'y'
			sawBy = sawBy || lastBy
			last = '`'
			i = j
		case isIdentByte(c):
			j := i
			digits := true
			for j < len(s) && isIdentByte(s[j]) {
				digits = digits && isDigit(s[j])
				j++
			}
			prev := byte(0)
			if i > 0 {
				prev = s[i-1]
			}
			// A number unless it names something: after '.' (t.1) or '@'
			// (@1) it is part of a name. Kept where the normalizer may keep
			// it (an ORDER BY / GROUP BY position: once BY has been seen,
			// after BY, ',' or '(', or a sign, which it drops after those).
			number := digits && prev != '.' && prev != '@' &&
				!(sawBy && (lastBy || last == ',' || last == '(' || last == '+' || last == '-'))
			if !number {
				dst = append(dst, s[i:j]...)
				lastBy = isBy(s[i:j])
				sawBy = sawBy || lastBy
				last = s[j-1]
				i = j
				continue
			}
			// What follows decides how the number is read: a fraction
			// (1.5) makes it a decimal, one shape of its own; an exponent
			// (1.5e3, 1.e-3) a float, whose first digits alone are erased.
			// Digits, a fraction and an 'e' not followed by exponent digits
			// (1.5ea) are a name to the normalizer: kept.
			k := j
			if k < len(s) && s[k] == '.' {
				k++
				for k < len(s) && isDigit(s[k]) {
					k++
				}
			}
			kind, mark := byte(spanNumber), byte(0)
			switch {
			case k < len(s) && (s[k] == 'e' || s[k] == 'E'):
				m := k + 1
				if m < len(s) && (s[m] == '+' || s[m] == '-') {
					m++
				}
				if m == len(s) || !isDigit(s[m]) {
					dst = append(dst, s[i:j]...)
					last, lastBy = s[j-1], false
					i = j
					continue
				}
			case k > j+1 && (k == len(s) || !isIdentByte(s[k])):
				j, kind, mark = k, spanDecimal, 1
			}
			if span != nil {
				span(kind, i, j)
			}
			dst = append(dst, mark)
			last, lastBy = mark, false
			i = j
		default:
			dst = append(dst, c)
			if !isSpace(c) {
				last, lastBy = c, false
			}
			i++
		}
	}
	return dst, true
}

// nameLike reports whether the string literal at s[i] may be a name rather
// than a value: after AS, or right after the end of an operand (a name, a
// number, a closing parenthesis or quote: `SELECT card 'x'`, whose 'x' an
// outer query or a HAVING may refer to), unless the word before it is one
// after which a value follows (LIKE, THEN, INTERVAL, ...).
func nameLike(s string, i int) bool {
	k := i - 1
	for k >= 0 && isSpace(s[k]) {
		k--
	}
	if k < 0 {
		return false
	}
	switch p := s[k]; {
	case p == ')' || p == '`' || p == '\'' || p == '"':
		return true
	case !isIdentByte(p):
		return false // an operator, '(', ',': a value follows
	case k == i-1:
		return false // _utf8mb4'...' or N'...' (erasable lets only these touch a name)
	}
	w := k
	for w > 0 && isIdentByte(s[w-1]) {
		w--
	}
	word := s[w : k+1]
	if len(word) > 12 {
		return true
	}
	var buf [12]byte
	for n := 0; n < len(word); n++ {
		buf[n] = word[n] | 0x20
	}
	_, value := valueWords[string(buf[:len(word)])]
	return !value
}

// valueWords are the words after which a string literal is a value.
var valueWords = map[string]struct{}{
	"select": {}, "where": {}, "having": {}, "on": {}, "and": {}, "or": {}, "not": {}, "xor": {},
	"like": {}, "rlike": {}, "regexp": {}, "is": {}, "when": {}, "then": {}, "else": {}, "case": {},
	"by": {}, "separator": {}, "escape": {}, "interval": {}, "binary": {}, "date": {}, "time": {},
	"timestamp": {}, "collate": {}, "charset": {}, "set": {}, "names": {}, "return": {}, "values": {},
	"value": {}, "default": {}, "div": {}, "mod": {}, "limit": {}, "offset": {}, "distinct": {}, "all": {},
	"in": {}, "between": {}, "comment": {},
}

// erasable reports whether the string literal at s[i] may lose its value
// in a shape: not a name (@'v'), and not the digits of a hex or bit
// literal (x'4F', b'01'), whose validity changes how the text is read.
// After a name only a character set introducer (_utf8mb4'...') and N'...'
// qualify.
func erasable(s string, i int) bool {
	if i == 0 {
		return true
	}
	switch p := s[i-1]; {
	case p == '@':
		return false
	case !isIdentByte(p):
		return true
	}
	w := i - 1
	for w > 0 && isIdentByte(s[w-1]) {
		w--
	}
	word := s[w:i]
	return word[0] == '_' || word == "n" || word == "N"
}

// wordLike reports whether a string literal's value (content, quoted by q)
// is one the normalizer reads as more than a value: "*" (it stays * in the
// digest) and "index" (it ends a USE/FORCE/IGNORE INDEX hint there).
func wordLike(content string, q byte) bool {
	if len(content) > 12 {
		return false
	}
	var buf [12]byte
	n := 0
	for k := 0; k < len(content); k++ {
		ch := content[k]
		switch {
		case ch == '\\' && k+1 < len(content):
			k++
			ch = content[k]
		case ch == q && k+1 < len(content) && content[k+1] == q:
			k++
		}
		buf[n] = ch | 0x20
		if ch < 'A' || ch > 'z' {
			buf[n] = ch
		}
		n++
	}
	v := string(buf[:n])
	return v == "*" || v == "index"
}

// isBy reports whether a word may be BY to the normalizer: BY itself, or a
// word with bytes >= 0x80 that contains it (the normalizer reads some of
// those bytes, 0x85 and 0xA0, as spaces).
func isBy(w string) bool {
	if len(w) == 2 {
		return (w[0]|0x20) == 'b' && (w[1]|0x20) == 'y'
	}
	ascii := true
	for k := 0; k < len(w); k++ {
		ascii = ascii && w[k] < 0x80
	}
	if ascii {
		return false
	}
	for k := 0; k+1 < len(w); k++ {
		if (w[k]|0x20) == 'b' && (w[k+1]|0x20) == 'y' {
			return true
		}
	}
	return false
}
