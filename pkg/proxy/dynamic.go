package proxy

import (
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// resolveDynamic judges PREPARE name FROM @var by the text the variable
// holds. A session runs one statement at a time, so what @var holds when
// the proxy reads it (SELECT @var on the backend leg) is what the server
// prepares next; the statement is then classified as PREPARE name FROM
// '<that text>', and every check — credential tables, policy, read_only,
// masking at EXECUTE — sees the statement the server will run; the journal
// records it in that form (sql). In a
// multi-statement an earlier statement could set the variable after it is
// read: refused, as is a variable that cannot be read.
func (s *session) resolveDynamic(st *statement.Statement) (resolved *statement.Statement, sql string, err error) {
	refuse := func(why string) *statement.Statement {
		cp := *st
		cp.Refused = why
		return &cp
	}
	var ps *ast.PrepareStmt
	if st.Count == 1 && len(st.Nodes) == 1 {
		ps, _ = st.Nodes[0].(*ast.PrepareStmt)
	}
	if ps == nil || ps.SQLVar == nil {
		return refuse("PREPARE ... FROM a variable must be a statement of its own: sqlwarden reads the variable to judge the text it holds"), "", nil
	}
	text, why, err := s.readVariable(ps.SQLVar.Name)
	if err != nil {
		return nil, "", err
	}
	if why != "" {
		return refuse("the text of @" + ps.SQLVar.Name + " " + why), "", nil
	}
	sql = "PREPARE " + quoteIdent(ps.Name) + " FROM " + quoteString(text, s.dialect.Mode)
	return s.srv.opts.Policy.Classify(sql, s.db, s.dialect), sql, nil
}

// quoteIdent quotes a name with backticks.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// quoteString quotes text as a string literal the server reads back as
// text under the session's sql_mode.
func quoteString(text string, mode sqltext.Mode) string {
	if mode&sqltext.NoBackslashEscapes == 0 {
		text = strings.ReplaceAll(text, `\`, `\\`)
	}
	return "'" + strings.ReplaceAll(text, "'", "''") + "'"
}

// readVariable reads user variable @name on the backend leg as the text the
// server reads when it prepares from it: its characters, whatever the
// client's character_set_results (a result in gbk or sjis could put a
// backslash or a quote where the server sees none). The bytes come as hex,
// in utf8mb4 (CONVERT): a session whose statements are not utf8, or a binary
// value that is not valid UTF-8, cannot be read the way the server reads it.
// why says why not; err is a broken backend leg.
func (s *session) readVariable(name string) (text, why string, err error) {
	if s.dialect.Charset != sqltext.CharsetUTF8 {
		return "", "cannot be read as the server reads it: the session's character set is not utf8", nil
	}
	v := "@" + quoteIdent(name)
	rows, failed, err := s.backendQuery("SELECT HEX(CONVERT(" + v + " USING utf8mb4)), CHARSET(" + v + "), HEX(" + v + ")")
	if err != nil || failed != "" {
		return "", "could not be read: " + failed, err
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return "", "could not be read", nil
	}
	h := rows[0][0]
	if rows[0][1] == "binary" {
		h = rows[0][2] // the bytes as they are: the server reads them in the connection's utf8
	}
	b, err := hex.DecodeString(h)
	if err != nil || !utf8.Valid(b) {
		return "", "is not valid UTF-8", nil
	}
	return string(b), "", nil
}
