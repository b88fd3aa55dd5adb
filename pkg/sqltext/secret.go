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
		if s[j]|0x20 != w[j] {
			return false
		}
	}
	return true
}
