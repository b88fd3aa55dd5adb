package statement

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// ReadOnlyReason says why a statement might change something — a table, a
// sequence, a routine, an account, a variable that outlives the session, a
// file, a lock — or returns "" when it provably cannot. It is an allowlist:
// what it does not know it refuses. sql is the text as the client sent it
// (st may be a cached classification of a text that differs in spacing);
// prepared returns the text of a statement the session prepared earlier
// with SQL PREPARE, so that EXECUTE is judged by what it runs.
//
// Admitted: SELECT and UNION without INTO OUTFILE/DUMPFILE or a locking
// read, calling only MariaDB builtins known to be pure; SHOW, DESCRIBE,
// EXPLAIN (not ANALYZE), HELP, USE, DO; BEGIN / START TRANSACTION (not READ
// WRITE), COMMIT, ROLLBACK, savepoints, UNLOCK TABLES; SET of user variables
// and of session variables other than the transaction access mode and the
// few that change how the server logs or reports (SET GLOBAL never); PREPARE
// of literal text that itself passes, EXECUTE of such, DEALLOCATE.
func ReadOnlyReason(sql string, st *Statement, prepared func(name string) (string, bool)) string {
	r, _ := ReadOnly(sql, st, "", prepared)
	return r
}

// ReadOnly is ReadOnlyReason that also lists the tables an admitted
// statement reads (db qualifies unqualified names): a view among them runs
// its definition, which must pass too, and only the server knows which
// tables are views.
func ReadOnly(sql string, st *Statement, db string, prepared func(name string) (string, bool)) (string, []TableRef) {
	if st == nil || !st.Parsed || len(st.Nodes) == 0 {
		if st != nil && st.Err != "" {
			return "statement could not be parsed: " + st.Err, nil
		}
		return "statement could not be parsed", nil
	}
	if r := lexicalCall(sql, st.Dialect); r != "" {
		return r, nil
	}
	j := roJudge{prepared: prepared, dialect: st.Dialect, db: db}
	for _, n := range st.Nodes {
		if r := j.statement(n, 0); r != "" {
			return r, nil
		}
	}
	return "", j.tables
}

type roJudge struct {
	prepared func(string) (string, bool)
	dialect  sqltext.Dialect
	db       string
	tables   []TableRef
	// local holds what earlier statements of the same text prepared.
	local map[string]string
}

func (j *roJudge) statement(n ast.StmtNode, depth int) string {
	switch x := n.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt, *ast.DoStmt:
		j.collect(x)
		return pureTree(x)
	case *ast.ShowStmt, *ast.HelpStmt:
		return pureTree(x)
	case *ast.ExplainStmt:
		if x.Analyze {
			return "EXPLAIN ANALYZE runs the statement"
		}
		// EXPLAIN does not run the statement, but the optimizer may evaluate
		// constant expressions (views included): they must be pure too.
		j.collect(x)
		return functionsPure(x)
	case *ast.UseStmt:
		j.db = x.DBName
		return ""
	case *ast.ExplainForStmt, *ast.CommitStmt, *ast.RollbackStmt,
		*ast.SavepointStmt, *ast.ReleaseSavepointStmt, *ast.UnlockTablesStmt:
		return ""
	case *ast.BeginStmt:
		// The grammar folds START TRANSACTION READ WRITE into a plain BEGIN.
		if strings.Contains(strings.ToUpper(x.Text()), "WRITE") {
			return "START TRANSACTION READ WRITE switches off read-only mode"
		}
		return ""
	case *ast.SetStmt:
		j.collect(x)
		for _, v := range x.Variables {
			if r := setVariable(v); r != "" {
				return r
			}
		}
		return ""
	case *ast.PrepareStmt:
		if x.SQLVar != nil {
			return "PREPARE from a variable hides the statement"
		}
		if depth >= maxDepth {
			return "PREPARE nested too deeply"
		}
		if r := j.text(x.SQLText, depth+1); r != "" {
			return "prepared statement " + x.Name + ": " + r
		}
		if j.local == nil {
			j.local = map[string]string{}
		}
		j.local[FoldName(x.Name)] = x.SQLText
		return ""
	case *ast.ExecuteStmt:
		if x.BinaryArgs != nil || x.Name == "" {
			return "EXECUTE of an unnamed statement"
		}
		name := FoldName(x.Name)
		text, ok := j.local[name]
		if !ok && j.prepared != nil {
			text, ok = j.prepared(name)
		}
		if !ok {
			return "EXECUTE of " + x.Name + ", which was not prepared in this session"
		}
		for _, e := range x.UsingVars {
			if r := pureTree(e); r != "" {
				return r
			}
		}
		if depth >= maxDepth {
			return "EXECUTE nested too deeply"
		}
		if r := j.text(text, depth+1); r != "" {
			return "prepared statement " + x.Name + ": " + r
		}
		return ""
	case *ast.DeallocateStmt:
		return ""
	case *ast.CallStmt:
		return "CALL runs a stored procedure"
	case *ast.LockTablesStmt:
		return "LOCK TABLES takes table locks"
	}
	return kindOf(n) + " is not a read"
}

// text judges the text of a PREPARE.
func (j *roJudge) text(sql string, depth int) string {
	st := classifyAs(sql, j.db, j.dialect)
	if !st.Parsed || len(st.Nodes) == 0 {
		return ReadOnlyReason(sql, st, nil)
	}
	if r := lexicalCall(sql, j.dialect); r != "" {
		return r
	}
	for _, n := range st.Nodes {
		if r := j.statement(n, depth); r != "" {
			return r
		}
	}
	return ""
}

// collect notes the tables a statement names (CTEs aside).
func (j *roJudge) collect(n ast.Node) {
	c := tableCollector{}
	n.Accept(&c)
	for _, t := range c.names {
		if t.Schema.L == "" && c.ctes[t.Name.L] {
			continue
		}
		r := TableRef{Schema: t.Schema.O, Name: t.Name.O}
		if r.Schema == "" {
			r.Schema = j.db
		}
		j.tables = append(j.tables, r)
	}
}

// tableCollector gathers table names and CTE names.
type tableCollector struct {
	names []*ast.TableName
	ctes  map[string]bool
}

func (c *tableCollector) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		c.names = append(c.names, x)
	case *ast.CommonTableExpression:
		if c.ctes == nil {
			c.ctes = map[string]bool{}
		}
		c.ctes[x.Name.L] = true
	}
	return n, false
}

func (c *tableCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// Session variables a read-only session may not set: the transaction access
// mode (the server-side half of read-only), and those that change what the
// server logs, replicates or reports to the proxy.
var roVarPrefixes = []string{"session_track_", "pseudo_", "gtid_", "sql_log_", "wsrep_", "skip_replication"}

func setVariable(v *ast.VariableAssignment) string {
	name := strings.ToLower(v.Name)
	switch {
	case v.IsGlobal:
		return "SET GLOBAL " + name + " changes the server for everyone"
	case !v.IsSystem:
		// User variables (@x) and SET NAMES / CHARACTER SET live and die
		// with the session.
	case strings.Contains(name, "read_only"):
		if !literalTrue(v.Value) {
			return "SET " + name + " switches off read-only mode"
		}
		return ""
	default:
		for _, p := range roVarPrefixes {
			if strings.HasPrefix(name, p) {
				return "SET " + name + " is not allowed in read-only mode"
			}
		}
	}
	if v.Value != nil {
		return pureTree(v.Value)
	}
	return ""
}

// literalTrue reports a value that sets a boolean variable on: 1, ON, TRUE.
func literalTrue(e ast.ExprNode) bool {
	switch x := e.(type) {
	case ast.ValueExpr:
		switch s := strings.ToLower(fmt.Sprint(x.GetValue())); s {
		case "1", "on", "true":
			return true
		}
	case *ast.ColumnNameExpr:
		n := x.Name
		return n.Table.L == "" && (n.Name.L == "on" || n.Name.L == "true")
	}
	return false
}

// pureTree checks a SELECT, DO, SHOW or expression: no file written, no
// locking read, only pure builtins.
func pureTree(n ast.Node) string {
	v := &roVisitor{checkSelect: true}
	n.Accept(v)
	return v.reason
}

// functionsPure checks only the functions a tree calls.
func functionsPure(n ast.Node) string {
	v := &roVisitor{}
	n.Accept(v)
	return v.reason
}

type roVisitor struct {
	checkSelect bool
	reason      string
}

func (v *roVisitor) Enter(n ast.Node) (ast.Node, bool) {
	if v.reason != "" {
		return n, true
	}
	switch x := n.(type) {
	case *ast.SelectStmt:
		if !v.checkSelect {
			break
		}
		if x.SelectIntoOpt != nil && x.SelectIntoOpt.Tp != ast.SelectIntoVars {
			v.reason = "SELECT ... INTO OUTFILE writes a file"
		} else if x.LockInfo != nil && x.LockInfo.LockType != ast.SelectLockNone {
			v.reason = "a locking read (" + x.LockInfo.LockType.String() + ") takes row locks"
		}
	case *ast.FuncCallExpr:
		if x.Schema.L != "" {
			v.reason = "function " + x.Schema.O + "." + x.FnName.O + " is a stored function, which may write"
		} else {
			v.reason = funcReason(x.FnName.L)
		}
	case *ast.AggregateFuncExpr:
		if !pureAggregates[strings.ToLower(x.F)] {
			v.reason = "aggregate function " + strings.ToUpper(x.F) + " is not known to be pure"
		}
	case *ast.WindowFuncExpr:
		if !pureWindows[strings.ToLower(x.Name)] {
			v.reason = "window function " + strings.ToUpper(x.Name) + " is not known to be pure"
		}
	case *ast.SubqueryExpr, *ast.ExistsSubqueryExpr:
		// walked into: the SELECTs inside are checked on their own
	}
	return n, v.reason != ""
}

func (v *roVisitor) Leave(n ast.Node) (ast.Node, bool) { return n, true }

func funcReason(name string) string {
	if pureFunctions[name] {
		return ""
	}
	if why, ok := sideEffects[name]; ok {
		return "function " + strings.ToUpper(name) + " " + why
	}
	return "function " + strings.ToUpper(name) + " is not a builtin known to be pure (a stored function may write)"
}

// sideEffects names builtins that change something outside the statement.
var sideEffects = map[string]string{
	"nextval":           "advances a sequence",
	"setval":            "changes a sequence",
	"get_lock":          "takes a named lock that outlives the statement",
	"release_lock":      "releases a named lock",
	"release_all_locks": "releases named locks",
	"load_file":         "reads a file on the database server",
	"master_pos_wait":   "waits on replication",
	"master_gtid_wait":  "waits on replication",
}

// pureFunctions are the MariaDB builtins a read-only statement may call:
// each computes a value from its arguments, the clock, the session or the
// server's metadata, and changes nothing. Keys are the names the parser
// reports (char_func is CHAR(), insert_func is INSERT()). SLEEP and
// BENCHMARK change nothing either; a statement_timeout bounds them.
//
// A name is only safe if MariaDB itself resolves it to the builtin: any
// other name is looked up as a stored function of the current database,
// which the agent may have created. TestPureFunctionsAreMariaDBBuiltins
// checks every entry against the server.
var pureFunctions = setOf(
	// control flow and comparison
	"if", "ifnull", "nullif", "coalesce", "isnull", "nvl", "nvl2", "greatest", "least", "interval", "strcmp",
	// strings
	"ascii", "bin", "bit_length", "char_func", "char_length", "character_length", "chr", "concat", "concat_ws",
	"elt", "export_set", "field", "find_in_set", "format", "from_base64", "hex", "insert_func", "instr", "lcase",
	"left", "length", "lengthb", "locate", "lower", "lpad", "ltrim", "make_set", "mid", "natural_sort_key",
	"oct", "octet_length", "ord", "position", "quote", "regexp_instr", "regexp_replace", "regexp_substr",
	"repeat", "replace", "reverse", "right", "rpad", "rtrim", "sformat", "soundex", "space", "substr",
	"substring", "substring_index", "to_base64", "to_char", "trim", "ucase", "unhex", "upper", "weight_string",
	"convert", "extractvalue", "updatexml", "collation", "charset", "coercibility",
	"column_check", "column_create", "column_add", "column_delete", "column_exists", "column_get", "column_json", "column_list",
	// numbers
	"abs", "acos", "asin", "atan", "atan2", "ceil", "ceiling", "conv", "cos", "cot", "crc32", "crc32c", "degrees",
	"exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians", "rand", "round", "sign",
	"sin", "sqrt", "tan", "truncate", "bit_count",
	// dates and times
	"adddate", "addtime", "add_months", "convert_tz", "curdate", "current_date", "current_time", "current_timestamp",
	"curtime", "date", "date_add", "date_format", "date_sub", "datediff", "day", "dayname", "dayofmonth", "dayofweek",
	"dayofyear", "extract", "from_days", "from_unixtime", "get_format", "hour", "last_day", "localtime",
	"localtimestamp", "makedate", "maketime", "microsecond", "minute", "month", "monthname", "now", "period_add",
	"period_diff", "quarter", "sec_to_time", "second", "str_to_date", "subdate", "subtime", "sysdate", "time",
	"time_format", "time_to_sec", "timediff", "timestamp", "timestampadd", "timestampdiff", "to_days",
	"to_seconds", "unix_timestamp", "utc_date", "utc_time", "utc_timestamp", "week", "weekday", "weekofyear",
	"year", "yearweek",
	// JSON
	"json_array", "json_array_append", "json_array_insert", "json_compact", "json_contains", "json_contains_path",
	"json_depth", "json_detailed", "json_equals", "json_exists", "json_extract", "json_insert", "json_keys",
	"json_length", "json_loose", "json_merge", "json_merge_patch", "json_merge_preserve", "json_normalize",
	"json_object", "json_overlaps", "json_pretty", "json_query", "json_quote", "json_remove", "json_replace",
	"json_search", "json_set", "json_type", "json_unquote", "json_valid", "json_value",
	// hashing, encryption, compression
	"aes_decrypt", "aes_encrypt", "compress", "uncompress", "uncompressed_length", "decode", "encode", "md5",
	"password", "old_password", "random_bytes", "sha", "sha1", "sha2",
	// session and server information
	"benchmark", "connection_id", "current_role", "current_user", "database", "schema", "found_rows",
	"last_insert_id", "row_count", "session_user", "system_user", "user", "version", "lastval",
	"is_free_lock", "is_used_lock", "sleep",
	// network addresses, identifiers
	"inet_aton", "inet_ntoa", "inet6_aton", "inet6_ntoa", "is_ipv4", "is_ipv4_compat", "is_ipv4_mapped",
	"is_ipv6", "uuid", "uuid_short", "sys_guid", "name_const",
)

var pureAggregates = setOf("avg", "bit_and", "bit_or", "bit_xor", "count", "group_concat", "max", "min",
	"std", "stddev", "stddev_pop", "stddev_samp", "sum", "variance", "var_pop", "var_samp",
	"json_arrayagg", "json_objectagg")

var pureWindows = setOf("cume_dist", "dense_rank", "first_value", "lag", "last_value", "lead", "nth_value",
	"ntile", "percent_rank", "rank", "row_number",
	// aggregates used as window functions
	"avg", "bit_and", "bit_or", "bit_xor", "count", "max", "min", "std", "stddev", "stddev_pop",
	"stddev_samp", "sum", "variance", "var_pop", "var_samp")

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// spaceSensitive are the builtins MariaDB recognizes only when "(" follows
// the name at once (its lexer's function keywords, the names IGNORE_SPACE
// is about): `COUNT (x)` and `NOW ()` call a stored function named count or
// now in the current database, which an agent can create. The parser reads
// them as the builtin either way, so the text is checked.
var spaceSensitive = []string{"adddate", "bit_and", "bit_or", "bit_xor", "cast", "count", "cume_dist",
	"curdate", "curtime", "date_add", "date_sub", "dense_rank", "extract", "first_value",
	"group_concat", "lag", "lead", "max", "median", "mid", "min", "now", "nth_value", "ntile",
	"percent_rank", "percentile_cont", "percentile_disc", "position", "rank", "session_user",
	"std", "stddev", "stddev_pop", "stddev_samp", "subdate", "substr", "substring", "sum",
	"system_user", "trim", "variance", "var_pop", "var_samp", "json_arrayagg", "json_objectagg"}

// gap is what MariaDB's lexer skips between tokens: whitespace and comments.
const gap = `(?:\s|/\*.*?\*/|--[ \t][^\n]*(?:\n|$)|#[^\n]*(?:\n|$))`

var (
	spacedCall = regexp.MustCompile(`(?is)(?:^|[^\w$.@` + "`" + `])(` + strings.Join(spaceSensitive, "|") + `)` + gap + `+\(`)
	// A quoted name followed by "(" is never a function keyword: MariaDB
	// calls the native function of that name if there is one, else a
	// stored function (`count`(1), "now"() under ANSI_QUOTES).
	quotedCall = regexp.MustCompile("(?s)(`(?:[^`]|``)*`|\"(?:[^\"\\\\]|\\\\.|\"\")*\")" + gap + `*\(`)
)

// lexicalCall finds calls the parser reads as builtins but MariaDB may
// resolve to stored functions, in the text as the server runs it.
// Fail-closed: a string literal that merely looks like such a call is
// refused too.
func lexicalCall(sql string, d sqltext.Dialect) string {
	if !strings.Contains(sql, "(") {
		return ""
	}
	sql, err := sqltext.Executable(sql, d)
	if err != nil {
		return err.Error()
	}
	// Under IGNORE_SPACE the function keywords are reserved: a space does
	// not make them a stored function's name.
	if d.Mode&sqltext.IgnoreSpace == 0 {
		if m := spacedCall.FindStringSubmatch(sql); m != nil {
			return "function " + strings.ToUpper(m[1]) + " called with a space before \"(\" names a stored function, which may write"
		}
	}
	if m := quotedCall.FindStringSubmatch(sql); m != nil {
		return "quoted name " + m[1] + " called as a function may name a stored function, which may write"
	}
	return ""
}
