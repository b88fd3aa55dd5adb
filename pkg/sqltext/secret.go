package sqltext

// MentionsPassword reports whether sql has the word PASSWORD (also as part
// of a longer name, MASTER_PASSWORD) or IDENTIFIED, in any case: a statement
// whose literals may be a password (SET PASSWORD, CREATE SERVER ...
// OPTIONS (PASSWORD '...'), CHANGE MASTER ... MASTER_PASSWORD = '...',
// DO PASSWORD('...'), IDENTIFIED BY '...'), which the journal keeps as its
// digest only. One pass, no allocation: it runs on every statement.
func MentionsPassword(sql string) bool {
	for i := 0; i < len(sql); i++ {
		switch sql[i] | 0x20 {
		case 'p':
			if hasFold(sql[i:], "password") {
				return true
			}
		case 'i':
			if hasFold(sql[i:], "identified") {
				return true
			}
		}
	}
	return false
}

// hasFold reports whether s starts with the lower-case ASCII word w, in any
// case.
func hasFold(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		c := s[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// NamesParserAlias reports whether sql has the word char_func, insert_func
// or default_func, in any case: the TiDB parser's own names for CHAR(),
// INSERT() and DEFAULT(), which it cannot tell from a call of a function so
// named — a stored function to the server, which has no built-in by those
// names.
func NamesParserAlias(sql string) bool {
	for i := 0; i+5 <= len(sql); i++ {
		if sql[i] != '_' || !hasFold(sql[i:], "_func") {
			continue
		}
		end := i + 5
		if end < len(sql) && isIdentByte(sql[end]) {
			continue
		}
		w := i
		for w > 0 && isIdentByte(sql[w-1]) {
			w--
		}
		switch word := sql[w:i]; {
		case len(word) == 4 && hasFold(word, "char"), len(word) == 6 && hasFold(word, "insert"),
			len(word) == 7 && hasFold(word, "default"):
			return true
		}
	}
	return false
}
