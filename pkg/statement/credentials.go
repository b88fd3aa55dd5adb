package statement

import (
	"fmt"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"regexp"
	"strings"
)

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

// hiddenSQL says why text the parser cannot read must not run, whatever
// the policy says, when it builds SQL at run time: a PREPARE (from an
// expression, or in a routine's body) or an EXECUTE IMMEDIATE of anything
// but a string literal runs a statement no check sees — credential tables
// included. "" otherwise. Words inside strings, quoted names and comments
// do not count.
func hiddenSQL(text string) string {
	const why = "SQL built at run time (%s) in text the parser cannot read: sqlwarden cannot see the statement it runs"
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(text, i)
		case c == '/' && i+1 < len(text) && text[i+1] == '*',
			c == '#', c == '-' && i+2 < len(text) && text[i+1] == '-' && (text[i+2] == ' ' || text[i+2] == '\t'):
			i = skipComment(text, i)
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			switch strings.ToLower(text[i:j]) {
			case "prepare":
				return fmt.Sprintf(why, "PREPARE")
			case "immediate":
				// One string literal, then the end, a ';' or USING: 'a' ||
				// @b is an expression. The literal's text is what the
				// credential tables are looked for in, as written: so no
				// adjacent literals ('mysql.glo' 'bal_priv' is one) and no
				// backslash ('glob\al_priv' reads global_priv).
				k := skipSpace(text, j)
				if k >= len(text) || (text[k] != '\'' && text[k] != '"') {
					return fmt.Sprintf(why, "EXECUTE IMMEDIATE of an expression")
				}
				end := skipQuoted(text, k)
				if strings.IndexByte(text[k:end], '\\') >= 0 {
					return fmt.Sprintf(why, "EXECUTE IMMEDIATE of a string with a backslash escape")
				}
				rest := strings.ToLower(text[skipSpace(text, end):])
				if !(rest == "" || rest[0] == ';' || strings.HasPrefix(rest, "using") && (len(rest) == 5 || !isWordByte(rest[5]))) {
					return fmt.Sprintf(why, "EXECUTE IMMEDIATE of an expression")
				}
			}
			i = j
		default:
			i++
		}
	}
	return ""
}

// skipSpace returns the index of the first byte at or after i that is not
// white space or in a comment.
func skipSpace(text string, i int) int {
	for i < len(text) {
		switch text[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		n := skipComment(text, i)
		if n == i {
			break
		}
		i = n
	}
	return i
}

// skipQuoted returns the index after the quoted string or name at i (a
// doubled quote or, outside backticks, a backslash escapes).
func skipQuoted(text string, i int) int {
	q := text[i]
	for i++; i < len(text); i++ {
		switch {
		case text[i] == '\\' && q != '`':
			i++
		case text[i] == q:
			if i+1 < len(text) && text[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return i
}

// skipComment returns the index after the comment at i, or i when none
// starts there.
func skipComment(text string, i int) int {
	switch {
	case strings.HasPrefix(text[i:], "/*"):
		if e := strings.Index(text[i+2:], "*/"); e >= 0 {
			return i + 2 + e + 2
		}
		return len(text)
	case text[i] == '#', strings.HasPrefix(text[i:], "-- "), strings.HasPrefix(text[i:], "--\t"):
		if e := strings.IndexByte(text[i:], '\n'); e >= 0 {
			return i + e + 1
		}
		return len(text)
	}
	return i
}

// setsPassword reports whether an account statement sets a password or an
// authentication method.
func setsPassword(n ast.Node) bool {
	specs := func(us []*ast.UserSpec) bool {
		for _, u := range us {
			if u != nil && u.AuthOpt != nil {
				return true
			}
		}
		return false
	}
	switch x := n.(type) {
	case *ast.SetPwdStmt:
		return true
	case *ast.CreateUserStmt:
		return specs(x.Specs)
	case *ast.AlterUserStmt:
		return x.CurrentAuth != nil || specs(x.Specs)
	case *ast.GrantStmt:
		return specs(x.Users)
	}
	return false
}

// passwordWords finds, in text the parser could not read, what sets a
// password: IDENTIFIED (BY, VIA, WITH) or SET PASSWORD.
var passwordWords = regexp.MustCompile(`(?i)\bidentified\b|\bset\s+password\b`)

func textSetsPassword(text string) bool { return passwordWords.MatchString(text) }
