package statement

import "strings"

// credentialTables hold password hashes or other secrets: the account
// tables (mysql.user is a view over mysql.global_priv on MariaDB 10.4+),
// FEDERATED/Spider server passwords (mysql.servers), password history
// (MySQL's mysql.password_history, MariaDB's password_reuse_check plugin)
// and MySQL's replication source credentials (mysql.slave_master_info).
var credentialTables = map[string]bool{
	"user":                         true,
	"global_priv":                  true,
	"servers":                      true,
	"password_history":             true,
	"password_reuse_check_history": true,
	"slave_master_info":            true,
}

// isCredentialTable reports whether db.table (as the classifier qualifies
// names) is one of them. Case-insensitive: a server with
// lower_case_table_names set reads MYSQL.USER as mysql.user.
func isCredentialTable(qualified string) bool {
	db, table, ok := strings.Cut(qualified, ".")
	return ok && strings.EqualFold(db, "mysql") && credentialTables[strings.ToLower(table)]
}

// textCredentialTables is the check for a text the parser could not read:
// the credential tables it mentions as mysql.<table> in any quoting, or by
// name at all while the current database is mysql. It over-approximates on
// purpose (a string literal mentioning mysql.user counts): such a text
// cannot be judged anyway.
func textCredentialTables(text, db string) []string {
	// Identifier-ish words in order, with quotes and backticks dropped and
	// "." kept as a word of its own.
	var words []string
	i := 0
	for i < len(text) {
		c := text[i]
		switch {
		case c == '.':
			words = append(words, ".")
			i++
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			words = append(words, strings.ToLower(text[i:j]))
			i = j
		default:
			i++
		}
	}
	inMysql := strings.EqualFold(db, "mysql")
	var out []string
	for k, w := range words {
		if credentialTables[w] && (inMysql || k >= 2 && words[k-1] == "." && words[k-2] == "mysql") {
			out = append(out, "mysql."+w)
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
