package statement

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// Session settings that change how the server reads the statements after
// them: the sql_mode and the client character set. The proxy reads them back
// after a statement that assigns one (SetsSession); what it cannot follow
// is refused before the server sees it (Refused).

// setStmt looks at the variables a SET assigns; i is the statement's index
// in the text (-1 inside a PREPARE text).
func (c *classifier) setStmt(x *ast.SetStmt, i int) {
	for _, v := range x.Variables {
		if v == nil || v.IsGlobal {
			// A global value reaches this session only through a
			// connection reset, after which the proxy reads the session again.
			continue
		}
		name := strings.ToLower(v.Name)
		switch {
		case strings.HasPrefix(name, "session_track_"):
			c.refuse("SET of %s is refused: sqlwarden follows the session with session tracking", name)
		case name == "sql_mode" && v.IsSystem:
			c.lexingSet(i)
			if s, ok := literal(v.Value); ok {
				if _, err := sqltext.ParseSQLMode(s); err != nil {
					c.refuse("%v", err)
				}
			}
		case name == "character_set_results" && v.IsSystem:
			c.lexingSet(i)
			if _, ok := v.Value.(*ast.DefaultExpr); ok {
				continue
			}
			if x, ok := v.Value.(ast.ValueExpr); ok && x.GetValue() == nil {
				continue // NULL: no conversion
			}
			s, ok := literal(v.Value)
			if !ok {
				c.refuse("character_set_results can only be set to a literal name")
				continue
			}
			if err := sqltext.ResultsCharset(s); err != nil {
				c.refuse("%v", err)
			}
		case name == "character_set_client" && v.IsSystem, name == strings.ToLower(ast.SetNames), name == strings.ToLower(ast.SetCharset):
			c.lexingSet(i)
			if _, ok := v.Value.(*ast.DefaultExpr); ok {
				continue
			}
			s, ok := literal(v.Value)
			if !ok {
				c.refuse("the client character set can only be set to a literal name")
				continue
			}
			if _, err := sqltext.ClientCharset(s); err != nil {
				c.refuse("%v", err)
			}
		}
	}
}

// literal is the text of a string constant or a bare name (SET NAMES gbk,
// SET character_set_client = gbk).
func literal(e ast.ExprNode) (string, bool) {
	switch x := e.(type) {
	case *ast.ColumnNameExpr:
		if x.Name != nil && x.Name.Table.L == "" && x.Name.Schema.L == "" {
			return x.Name.Name.O, true
		}
	case ast.ParamMarkerExpr:
		return "", false
	case ast.ValueExpr:
		if s, ok := x.GetValue().(string); ok {
			return s, true
		}
	}
	return "", false
}

func (c *classifier) lexingSet(i int) {
	c.st.SetsSession = true
	if i > c.lastLexingSet {
		c.lastLexingSet = i
	}
}

func (c *classifier) refuse(format string, args ...any) {
	if c.st.Refused == "" {
		c.st.Refused = fmt.Sprintf(format, args...)
	}
}

// sessionFinish applies the rules that need the whole text: a statement
// that may change how the server reads the text after it must be last.
func (c *classifier) sessionFinish() {
	if c.lastLexingSet >= 0 && c.lastLexingSet < c.st.Count-1 {
		c.refuse("a SET of sql_mode or of the client character set must be the last statement of a multi-statement: the server reads the statements after it in the new setting")
	}
	for i, k := range c.st.Kinds {
		if k == "EXECUTE" && i < c.st.Count-1 {
			c.refuse("EXECUTE must be the last statement of a multi-statement: what it runs may change how the server reads the statements after it")
		}
	}
}

// setStatement matches MariaDB's SET STATEMENT var=value[, ...] FOR, which
// the parser does not know; its variable list is checked as text.
var setStatement = regexp.MustCompile(`(?is)^\s*SET\s+STATEMENT\s(.*?)\sFOR\s`)

var sessionVarName = regexp.MustCompile(`(?i)\b(sql_mode|character_set_\w+|collation_\w+|names|session_track_\w+)\b`)

// setNames matches SET NAMES / SET CHARACTER SET / SET CHARSET with a
// character set the parser may not know (big5, sjis, cp932 do not parse).
var setNames = regexp.MustCompile("(?is)^\\s*SET\\s+(?:NAMES|CHARACTER\\s+SET|CHARSET)\\s+['\"`]?(\\w+)")

// unparsedRefusal says why a text the parser could not read is refused
// before the server sees it ("" if nothing is known against it): a SET
// STATEMENT of a session variable the proxy follows, or SET NAMES with a
// character set it refuses.
func unparsedRefusal(text string) string {
	if why := hiddenSQL(text); why != "" {
		return why
	}
	if m := setStatement.FindStringSubmatch(text); m != nil {
		if v := sessionVarName.FindString(m[1]); v != "" {
			return "SET STATEMENT " + strings.ToLower(v) + " ... FOR is not supported"
		}
	}
	if m := setNames.FindStringSubmatch(text); m != nil {
		if _, err := sqltext.ClientCharset(m[1]); err != nil {
			return err.Error()
		}
	}
	return ""
}
