package statement

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // value expressions for the parser

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// KindUnparsed is the Kind of a statement the parser cannot read.
const KindUnparsed = "unparsed"

// Statement is what the parser found in one COM_QUERY or COM_STMT_PREPARE text.
//
// A multi-statement ("DELETE FROM a; SELECT 1") is classified as a whole:
// Kinds has one entry per statement in order, and Kind is the most dangerous
// of them (see kindRank: DROP/TRUNCATE, then other DDL, account and grant
// changes, UPDATE/DELETE, LOAD DATA, INSERT/REPLACE, CALL, SET, reads, session
// and transaction control). The boolean facts aggregate towards danger:
// HasWhere and HasLimit are false if any UPDATE or DELETE lacks them (when
// there is no UPDATE or DELETE, they describe the SELECTs), IntoOutfile and
// IsDDL are true if any statement has them, and the table and function lists
// are unions.
type Statement struct {
	Kind          string   `json:"kind"`
	Kinds         []string `json:"kinds,omitempty"`
	IsDDL         bool     `json:"is_ddl"`
	TablesRead    []string `json:"tables_read,omitempty"` // db.table when qualified or the database is known
	TablesWritten []string `json:"tables_written,omitempty"`
	HasWhere      bool     `json:"has_where"` // a WHERE that mentions no column (WHERE 1, WHERE true) counts as none
	// Overwrites: REPLACE ... SELECT or INSERT ... SELECT ... ON DUPLICATE
	// KEY UPDATE, which replace or change rows already in the table, as
	// many as the query returns: counted among the writes HasWhere
	// describes, by the query's WHERE.
	Overwrites  bool     `json:"overwrites,omitempty"`
	HasLimit    bool     `json:"has_limit"`
	IntoOutfile bool     `json:"into_outfile,omitempty"` // SELECT ... INTO OUTFILE or DUMPFILE
	Functions   []string `json:"functions,omitempty"`    // upper-case, deduplicated
	DynamicSQL  bool     `json:"dynamic_sql,omitempty"`  // PREPARE ... FROM @variable: the text is unknown until EXECUTE
	// Routines are the stored procedures and functions the statement
	// creates, drops or calls (CREATE/DROP PROCEDURE, CALL, a schema-qualified
	// function call db.f()), as db.name with the name in lower case (routine
	// names are case-insensitive). An unqualified call of a stored function
	// looks like a built-in function to the parser and is not listed.
	Routines []string `json:"routines,omitempty"`
	// AccountManagement: CREATE/ALTER/DROP/RENAME USER, CREATE/DROP ROLE,
	// GRANT, REVOKE, SET PASSWORD, SET ROLE, SET DEFAULT ROLE.
	AccountManagement bool `json:"account_management,omitempty"`
	// SetsGlobal: SET GLOBAL or SET @@global.x, a server-wide setting.
	SetsGlobal bool `json:"sets_global,omitempty"`
	// FileIO: the statement reads or writes a file on the database server's
	// disk: SELECT ... INTO OUTFILE/DUMPFILE, LOAD_FILE(), LOAD DATA INFILE
	// (not LOCAL, whose file comes from the client).
	FileIO bool `json:"file_io,omitempty"`
	// CredentialTables are the tables holding credentials the statement
	// names (mysql.user, mysql.global_priv, ...): always refused.
	CredentialTables []string `json:"credential_tables,omitempty"`
	// SetsPassword: the statement sets an account's password or how it
	// authenticates (SET PASSWORD, CREATE/ALTER USER or GRANT with
	// IDENTIFIED ...): always refused — a password set through sqlwarden
	// is known to whoever sent it, and could be the daemon's own.
	SetsPassword bool `json:"sets_password,omitempty"`
	// ShowsCredentials: the statement may return SHOW GRANTS or SHOW
	// CREATE USER output, whose password hashes are scrubbed in flight:
	// those SHOWs, CALL and EXECUTE (which run statements not seen here)
	// and text the parser cannot read.
	ShowsCredentials bool `json:"-"`

	Count  int    `json:"count"`           // statements in a multi-statement
	Digest string `json:"digest"`          // normalized text, literals replaced by ?
	Parsed bool   `json:"parsed"`          // false also when the text of a PREPARE ... FROM 'text' is unreadable
	Err    string `json:"error,omitempty"` // why it is not Parsed
	// Refused says why the statement must not run, whatever the policy says:
	// how the server reads its text cannot be decided (sqltext; Kind is then
	// unparsed), or it changes the session in a way the proxy cannot follow
	// (an unsupported sql_mode or client character set, session tracking).
	Refused string `json:"refused,omitempty"`
	// SetsSession: the text assigns the sql_mode or the client character
	// set, which change how the server reads later statements; the proxy
	// reads the session back after it runs.
	SetsSession bool           `json:"sets_session,omitempty"`
	Nodes       []ast.StmtNode `json:"-"` // the parsed statements, for masking lineage; do not modify
	// Text is what was parsed: the statement as the server runs it
	// (sqltext.Executable), for analyses that need the text itself.
	Text    string          `json:"-"`
	Dialect sqltext.Dialect `json:"-"`

	// The facts below are derived from the above when the statement is
	// classified, so that the proxy reads them without walking the tree.

	// Classification is the statement as the journal records it.
	Classification *record.Classification `json:"-"`
	// UseDB is the database a USE statement switches to.
	UseDB string `json:"-"`
	// KillTarget is the connection id a KILL statement targets, 0 otherwise.
	KillTarget uint64 `json:"-"`
	// LocalInfile reports LOAD DATA LOCAL INFILE (the file comes from the client).
	LocalInfile bool `json:"-"`
	// Cacheable says the classification and verdict depend only on the
	// text's shape, the database, the session's dialect and the identity
	// (one plain read or write), so they may be reused for the same shape
	// (Cache) and digest (a session's verdicts). A cached Statement is
	// shared between sessions: never modified after it is classified.
	Cacheable bool `json:"-"`
	// Reread: the statement may change how the backend reads the next one
	// (SetsSession, EXECUTE, text the parser could not read); the proxy
	// reads the session back after it.
	Reread bool `json:"-"`
	// ChangesSchema: the statement may change tables or views — DDL, or
	// what can run DDL out of sight (a procedure call, EXECUTE, dynamic
	// SQL, text the parser could not read) — which masking follows.
	ChangesSchema bool `json:"-"`
	// Prepares are the SQL-level PREPAREs of the text, in order, so the
	// session knows what a later EXECUTE runs; Deallocates the names it drops
	// (lower case: statement names are case-insensitive).
	Prepares    []Prepare `json:"-"`
	Deallocates []string  `json:"-"`
	// InnerKinds are the kinds of what the text prepares (PREPARE ... FROM
	// 'text') and runs (EXECUTE of a statement whose text is known): policy
	// sees them among `kinds`, so a rule on DELETE holds a prepared DELETE.
	InnerKinds []string `json:"-"`
	// Executes are the names the text EXECUTEs whose prepared text is not
	// known (not prepared earlier in the text, nor given by
	// ClassifyPrepared's lookup): what they run cannot be judged.
	Executes []string `json:"-"`
	// Runs are the prepared texts the text's EXECUTEs run, in order.
	Runs []string `json:"-"`
}

// Prepare is one PREPARE name FROM ...: Text is the statement prepared,
// empty when it comes from a variable (Dynamic), and DB the database it
// was prepared in, where the server resolves its names for every EXECUTE.
type Prepare struct {
	Name    string
	Text    string
	Dynamic bool
	DB      string
	Dialect sqltext.Dialect // how the server read Text at PREPARE (its sql_mode then)
}

var parserPool = sync.Pool{New: func() any { return parser.New() }}

// Classify is ClassifyAs for sqltext.DefaultServer and the default sql_mode.
func Classify(sql, currentDB string) *Statement {
	return ClassifyAs(sql, currentDB, sqltext.Dialect{Server: sqltext.DefaultServer})
}

// ClassifyAs parses sql (one statement or several separated by ';') with
// the TiDB parser, as server d reads it: the text is first made what the
// server runs (sqltext.Executable: executable comments by the server's
// version, others removed) and parsed with the session's sql_mode flags.
// currentDB qualifies unqualified table names; a USE inside the text changes
// it for the statements after it. ClassifyAs never panics: a parser panic
// yields an unparsed Statement.
func ClassifyAs(sql, currentDB string, d sqltext.Dialect) *Statement {
	return classifyAs(sql, currentDB, d).settle()
}

// ClassifyExecutable is ClassifyAs for text that sqltext.Executable already
// made (for d): callers that looked at the executable text first (a cache
// keyed on its shape) do not scan it twice. It keeps text.
func ClassifyExecutable(text, currentDB string, d sqltext.Dialect) *Statement {
	return classifyExecutable(text, currentDB, d).settle()
}

// ClassifyPrepared is ClassifyAs for a session that knows the statements it
// prepared with SQL PREPARE: an EXECUTE of one is classified as what it runs
// (the prepared text, read in the database it was prepared in) merged into
// the EXECUTE, as a PREPARE's text is merged into the PREPARE. A name that
// lookup does not know is left in Executes.
func ClassifyPrepared(sql, currentDB string, d sqltext.Dialect, lookup func(name string) (Prepare, bool)) *Statement {
	text, err := sqltext.Executable(sql, d)
	if err != nil {
		return (&Statement{Kind: KindUnparsed, Count: 1, Err: err.Error(), Refused: err.Error(), Dialect: d}).settle()
	}
	return classifyWith(text, currentDB, d, lookup).settle()
}

// classifyAs is ClassifyAs without the derived facts: for the text of a
// PREPARE, which is merged into the statement that prepares it.
func classifyAs(sql, currentDB string, d sqltext.Dialect) *Statement {
	text, err := sqltext.Executable(sql, d)
	if err != nil {
		return &Statement{Kind: KindUnparsed, Count: 1, Err: err.Error(), Refused: err.Error(), Dialect: d}
	}
	return classifyExecutable(text, currentDB, d)
}

func classifyExecutable(text, currentDB string, d sqltext.Dialect) *Statement {
	return classifyWith(text, currentDB, d, nil)
}

func classifyWith(text, currentDB string, d sqltext.Dialect, lookup func(string) (Prepare, bool)) (st *Statement) {
	// The digest is of the text the server runs; the normalizer knows no
	// sql_mode, so under ANSI_QUOTES or NO_BACKSLASH_ESCAPES it can merge
	// statements that differ (callers must not key caches on it there).
	st = &Statement{Digest: normalize(text), Text: text, Dialect: d}
	defer func() {
		if r := recover(); r != nil {
			*st = Statement{Kind: KindUnparsed, Count: 1, Digest: st.Digest, Err: fmt.Sprintf("parser panic: %v", r), Text: text, Dialect: d}
		}
	}()
	p := parserPool.Get().(*parser.Parser)
	p.SetSQLMode(d.Mode.ParserMode())
	nodes, _, err := p.Parse(text, "", "")
	// The parser reuses its result slice; keep our own copy.
	nodes = slices.Clone(nodes)
	if len(text) <= maxCachedText {
		// A parser keeps its last text, tree and scan buffers: one that
		// read a huge statement is not kept for the next.
		parserPool.Put(p)
	}
	if err != nil {
		st.Kind, st.Count, st.Err = KindUnparsed, 1, firstLine(err.Error())
		st.Refused = unparsedRefusal(text)
		st.CredentialTables = textCredentialTables(text, currentDB)
		st.SetsPassword = textSetsPassword(text)
		st.ShowsCredentials = true
		return st
	}
	if len(nodes) == 0 {
		st.Kind, st.Count, st.Err = KindUnparsed, 0, "empty statement"
		return st
	}
	st.Parsed = true
	st.Nodes = nodes
	st.Count = len(nodes)
	c := classifier{db: currentDB, st: st, dialect: d, lastLexingSet: -1, lookup: lookup}
	for i, n := range nodes {
		c.index = i
		c.statement(n, 0)
	}
	c.finish()
	c.sessionFinish()
	if st.Refused == "" && sqltext.NamesParserAlias(text) {
		// The parser reads CHAR(), INSERT() and DEFAULT() as char_func,
		// insert_func and default_func: a call of a function so named (a
		// stored function to the server) would pass for a built-in.
		st.Refused = "a function named char_func, insert_func or default_func is read as the built-in CHAR, INSERT or DEFAULT by sqlwarden's parser, as a stored function by the server"
	}
	return st
}

func normalize(sql string) (out string) {
	defer func() {
		if recover() != nil {
			out = ""
		}
	}()
	return parser.Normalize(sql, "ON")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

type classifier struct {
	db      string
	st      *Statement
	dialect sqltext.Dialect
	lookup  func(string) (Prepare, bool) // the session's SQL-level prepared statements
	// index is the statement of the text being classified; lastLexingSet
	// the last one that sets the sql_mode or client character set (-1: none).
	index, lastLexingSet int

	read, written map[string]bool
	funcs         map[string]bool
	routines      map[string]bool
	creds         map[string]bool
	// WHERE/LIMIT facts per statement class.
	writes, writesWhere, writesLimit    int
	selects, selectsWhere, selectsLimit int
	maxRank                             int
}

const maxDepth = 4 // PREPARE nesting

// statement classifies one top-level statement (or the text of a PREPARE).
func (c *classifier) statement(n ast.StmtNode, depth int) {
	kind := kindOf(n)
	if ex, ok := n.(*ast.ExplainStmt); ok && ex.Analyze && ex.Stmt != nil {
		// EXPLAIN ANALYZE runs the statement.
		kind = kindOf(ex.Stmt)
	}
	if depth == 0 {
		c.st.Kinds = append(c.st.Kinds, kind)
	}
	if r := kindRank(kind); r > c.maxRank || c.st.Kind == "" {
		if r > c.maxRank || c.st.Kind == "" {
			c.maxRank, c.st.Kind = r, kind
		}
	}
	if _, ok := n.(ast.DDLNode); ok {
		c.st.IsDDL = true
	}
	c.facts(n)
	switch x := n.(type) {
	case *ast.UseStmt:
		c.db = x.DBName
		return
	case *ast.SetStmt:
		if depth == 0 {
			c.setStmt(x, c.index)
		}
	case *ast.PrepareStmt:
		if x.SQLVar != nil {
			c.st.DynamicSQL = true
		}
		if depth == 0 {
			c.st.Prepares = append(c.st.Prepares, Prepare{Name: c.stmtName(x.Name), Text: x.SQLText, Dynamic: x.SQLVar != nil, DB: c.db, Dialect: c.dialect})
		}
		if x.SQLText != "" && depth < maxDepth {
			// The server reads the prepared text as it reads a statement.
			inner := classifyAs(x.SQLText, c.db, c.dialect)
			c.merge(inner)
		}
	case *ast.ExecuteStmt:
		if depth == 0 && x.Name != "" {
			c.execute(c.stmtName(x.Name))
		}
	}
	c.tables(n)
}

// facts records what one statement does besides reading and writing
// tables: routines, account changes, server-wide settings, server files.
func (c *classifier) facts(n ast.StmtNode) {
	switch x := n.(type) {
	case *ast.ExplainStmt:
		if x.Analyze && x.Stmt != nil {
			c.facts(x.Stmt)
		}
	case *ast.ProcedureInfo:
		// A stored program is a schema object: creating one is DDL.
		c.st.IsDDL = true
		c.routine(x.ProcedureName.Schema.O, x.ProcedureName.Name.O)
	case *ast.DropProcedureStmt:
		c.st.IsDDL = true
		c.routine(x.ProcedureName.Schema.O, x.ProcedureName.Name.O)
	case *ast.CallStmt:
		if x.Procedure != nil {
			c.routine(x.Procedure.Schema.O, x.Procedure.FnName.O)
		}
	case *ast.CreateUserStmt, *ast.AlterUserStmt, *ast.DropUserStmt, *ast.RenameUserStmt,
		*ast.GrantStmt, *ast.GrantRoleStmt, *ast.GrantProxyStmt, *ast.RevokeStmt, *ast.RevokeRoleStmt,
		*ast.SetPwdStmt, *ast.SetRoleStmt, *ast.SetDefaultRoleStmt:
		c.st.AccountManagement = true
		c.st.SetsPassword = c.st.SetsPassword || setsPassword(x)
	case *ast.SetStmt:
		for _, v := range x.Variables {
			if v != nil && v.IsGlobal {
				c.st.SetsGlobal = true
			}
		}
	case *ast.LoadDataStmt:
		if x.FileLocRef != ast.FileLocClient {
			c.st.FileIO = true
		}
	case *ast.ShowStmt:
		if x.Tp == ast.ShowGrants || x.Tp == ast.ShowCreateUser {
			c.st.ShowsCredentials = true
		}
	case *ast.ExecuteStmt:
		c.st.ShowsCredentials = true
	}
	if _, ok := n.(*ast.CallStmt); ok {
		c.st.ShowsCredentials = true
	}
}

// routine notes a stored routine by name, qualified with the current
// database when the statement does not name one.
func (c *classifier) routine(schema, name string) {
	if name == "" {
		return
	}
	if schema == "" {
		schema = c.db
	}
	if schema != "" {
		name = schema + "." + strings.ToLower(name)
	} else {
		name = strings.ToLower(name)
	}
	if c.routines == nil {
		c.routines = map[string]bool{}
	}
	c.routines[name] = true
}

// execute merges what EXECUTE name runs: the text of a PREPARE earlier in
// this text, else of the session's statement of that name.
func (c *classifier) execute(name string) {
	var p Prepare
	found := false
	for i := len(c.st.Prepares) - 1; i >= 0; i-- {
		if c.st.Prepares[i].Name == name {
			p, found = c.st.Prepares[i], true
			break
		}
	}
	if !found && c.lookup != nil {
		p, found = c.lookup(name)
	}
	if !found || p.Dynamic || p.Text == "" {
		c.st.Executes = append(c.st.Executes, name)
		return
	}
	c.st.Runs = append(c.st.Runs, p.Text)
	c.merge(classifyAs(p.Text, p.DB, p.Dialect))
}

// stmtName is a prepared statement's name as the session keys it. Names
// are compared case-insensitively by the server's own folding, which is not
// Go's beyond ASCII (σ and ς are one name to MariaDB): a name of anything
// but ASCII letters, digits, _ and $ is refused, and the rest fold the same.
func (c *classifier) stmtName(name string) string {
	if !StatementNameOK(name) && c.st.Refused == "" {
		c.st.Refused = fmt.Sprintf("prepared statement name %q: sqlwarden takes names of ASCII letters, digits, _ and $ only (the server folds others differently)", name)
	}
	return FoldName(name)
}

// StatementNameOK reports a prepared statement name of ASCII letters,
// digits, _ and $.
func StatementNameOK(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$') {
			return false
		}
	}
	return name != ""
}

// FoldName is a prepared statement name in the one case the session keys
// it by (ASCII lower case: other names are refused).
func FoldName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// merge folds the classification of a PREPARE's text into this one.
func (c *classifier) merge(in *Statement) {
	c.st.InnerKinds = append(append(c.st.InnerKinds, in.Kinds...), in.InnerKinds...)
	c.st.ShowsCredentials = c.st.ShowsCredentials || in.ShowsCredentials
	c.st.SetsPassword = c.st.SetsPassword || in.SetsPassword
	c.st.Overwrites = c.st.Overwrites || in.Overwrites
	for _, t := range in.CredentialTables {
		if c.creds == nil {
			c.creds = map[string]bool{}
		}
		c.creds[t] = true
	}
	if !in.Parsed {
		if r := kindRank(KindUnparsed); r > c.maxRank {
			c.maxRank, c.st.Kind = r, KindUnparsed
		}
		// The text to be prepared cannot be judged: the whole is unparsed.
		c.st.Parsed = false
		c.st.Err = "prepared text: " + in.Err
		if in.Refused != "" && c.st.Refused == "" {
			c.st.Refused = "prepared text: " + in.Refused
		}
		return
	}
	if in.Refused != "" && c.st.Refused == "" {
		c.st.Refused = "prepared text: " + in.Refused
	}
	if r := kindRank(in.Kind); r > c.maxRank {
		c.maxRank, c.st.Kind = r, in.Kind
	}
	c.st.IsDDL = c.st.IsDDL || in.IsDDL
	c.st.IntoOutfile = c.st.IntoOutfile || in.IntoOutfile
	c.st.DynamicSQL = c.st.DynamicSQL || in.DynamicSQL
	c.st.AccountManagement = c.st.AccountManagement || in.AccountManagement
	c.st.SetsGlobal = c.st.SetsGlobal || in.SetsGlobal
	c.st.FileIO = c.st.FileIO || in.FileIO
	for _, r := range in.Routines {
		if c.routines == nil {
			c.routines = map[string]bool{}
		}
		c.routines[r] = true
	}
	c.ensureMaps()
	for _, t := range in.TablesRead {
		c.read[t] = true
	}
	for _, t := range in.TablesWritten {
		c.written[t] = true
	}
	for _, f := range in.Functions {
		c.funcs[f] = true
	}
	for _, k := range in.Kinds {
		switch k {
		case "UPDATE", "DELETE":
			c.writes++
			if in.HasWhere {
				c.writesWhere++
			}
			if in.HasLimit {
				c.writesLimit++
			}
		}
	}
	if in.Overwrites {
		c.writes++
		if in.HasWhere {
			c.writesWhere++
		}
	}
}

func (c *classifier) ensureMaps() {
	if c.read == nil {
		c.read, c.written, c.funcs = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
}

func (c *classifier) finish() {
	st := c.st
	if c.writes > 0 {
		st.HasWhere = c.writesWhere == c.writes
		st.HasLimit = c.writesLimit == c.writes
	} else if c.selects > 0 {
		st.HasWhere = c.selectsWhere == c.selects
		st.HasLimit = c.selectsLimit == c.selects
	}
	st.TablesRead = sortedKeys(c.read)
	st.TablesWritten = sortedKeys(c.written)
	st.Functions = sortedKeys(c.funcs)
	st.Routines = sortedKeys(c.routines)
	for _, m := range []map[string]bool{c.read, c.written} {
		for t := range m {
			if isCredentialTable(t) {
				if c.creds == nil {
					c.creds = map[string]bool{}
				}
				c.creds[t] = true
			}
		}
	}
	st.CredentialTables = sortedKeys(c.creds)
	if st.IntoOutfile || c.funcs["LOAD_FILE"] {
		st.FileIO = true
	}
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// tables walks one statement, sorting every table it names into read or
// written, and collecting functions, WHERE/LIMIT and INTO OUTFILE facts.
func (c *classifier) tables(n ast.StmtNode) {
	c.ensureMaps()
	w := &walker{ctes: map[string]bool{}, aliases: map[string]*ast.TableName{}, targets: map[*ast.TableName]bool{}}
	// First pass: every table name, CTE name and alias.
	n.Accept(w)
	c.markTargets(n, w)
	for _, t := range w.names {
		if t.Schema.L == "" && w.ctes[t.Name.L] {
			continue // a CTE, not a table
		}
		name := c.qualify(t)
		if w.targets[t] {
			c.written[name] = true
		} else {
			c.read[name] = true
		}
	}
	for f := range w.funcs {
		c.funcs[f] = true
	}
	for _, f := range w.stored {
		c.routine(f.Schema.O, f.FnName.O)
	}
	if w.outfile {
		c.st.IntoOutfile = true
	}
	switch x := n.(type) {
	case *ast.UpdateStmt:
		c.writes++
		if meaningfulWhere(x.Where) {
			c.writesWhere++
		}
		if x.Limit != nil {
			c.writesLimit++
		}
	case *ast.DeleteStmt:
		c.writes++
		if meaningfulWhere(x.Where) {
			c.writesWhere++
		}
		if x.Limit != nil {
			c.writesLimit++
		}
	case *ast.InsertStmt:
		if x.Select != nil && (x.IsReplace || len(x.OnDuplicate) > 0) {
			c.st.Overwrites = true
			c.writes++
			if sel, ok := x.Select.(*ast.SelectStmt); ok {
				if meaningfulWhere(sel.Where) {
					c.writesWhere++
				}
				if sel.Limit != nil {
					c.writesLimit++
				}
			}
		}
	case *ast.SelectStmt:
		c.selects++
		if meaningfulWhere(x.Where) {
			c.selectsWhere++
		}
		if x.Limit != nil {
			c.selectsLimit++
		}
	case *ast.SetOprStmt:
		c.selects++
		if x.Limit != nil {
			c.selectsLimit++
		}
	case *ast.ExplainStmt:
		if x.Analyze && x.Stmt != nil {
			switch y := x.Stmt.(type) {
			case *ast.UpdateStmt, *ast.DeleteStmt:
				c.writes++
				where, limit := whereLimit(y)
				if meaningfulWhere(where) {
					c.writesWhere++
				}
				if limit {
					c.writesLimit++
				}
			}
		}
	}
}

func whereLimit(n ast.StmtNode) (ast.ExprNode, bool) {
	switch x := n.(type) {
	case *ast.UpdateStmt:
		return x.Where, x.Limit != nil
	case *ast.DeleteStmt:
		return x.Where, x.Limit != nil
	}
	return nil, false
}

// markTargets marks the TableName nodes a statement writes to.
func (c *classifier) markTargets(n ast.StmtNode, w *walker) {
	mark := func(ts ...*ast.TableName) {
		for _, t := range ts {
			if t != nil {
				w.targets[t] = true
			}
		}
	}
	markAll := func(n ast.Node) {
		if n == nil || reflect.ValueOf(n).IsNil() {
			return
		}
		sub := &walker{ctes: map[string]bool{}, aliases: map[string]*ast.TableName{}}
		n.Accept(sub)
		mark(sub.names...)
	}
	switch x := n.(type) {
	case *ast.ExplainStmt:
		if x.Analyze && x.Stmt != nil {
			c.markTargets(x.Stmt, w)
		}
	case *ast.InsertStmt:
		if x.Table != nil {
			markAll(x.Table)
		}
	case *ast.UpdateStmt:
		if x.TableRefs == nil {
			return
		}
		if !x.MultipleTable && !multiTable(x.TableRefs) {
			markAll(x.TableRefs)
			return
		}
		for _, a := range x.List {
			if a.Column == nil || a.Column.Table.L == "" {
				markAll(x.TableRefs) // unqualified column: could be any table
				return
			}
			if t := w.aliases[a.Column.Table.L]; t != nil {
				mark(t)
			} else {
				markAll(x.TableRefs)
				return
			}
		}
	case *ast.DeleteStmt:
		if !x.IsMultiTable || x.Tables == nil {
			if x.TableRefs != nil {
				markAll(x.TableRefs)
			}
			return
		}
		for _, t := range x.Tables.Tables {
			if src := w.aliases[t.Name.L]; src != nil {
				mark(src)
			}
			mark(t)
		}
	case *ast.CreateTableStmt:
		mark(x.Table)
	case *ast.DropTableStmt:
		mark(x.Tables...)
	case *ast.TruncateTableStmt:
		mark(x.Table)
	case *ast.AlterTableStmt:
		mark(x.Table)
	case *ast.RenameTableStmt:
		for _, tt := range x.TableToTables {
			mark(tt.OldTable, tt.NewTable)
		}
	case *ast.CreateIndexStmt:
		mark(x.Table)
	case *ast.DropIndexStmt:
		mark(x.Table)
	case *ast.CreateViewStmt:
		mark(x.ViewName)
	case *ast.LoadDataStmt:
		mark(x.Table)
	case *ast.RepairTableStmt:
		mark(x.Table)
	case *ast.OptimizeTableStmt:
		mark(x.Tables...)
	}
}

// multiTable reports whether a FROM/UPDATE clause names more than one table.
func multiTable(refs *ast.TableRefsClause) bool {
	w := &walker{ctes: map[string]bool{}, aliases: map[string]*ast.TableName{}}
	refs.Accept(w)
	return len(w.names) > 1
}

func (c *classifier) qualify(t *ast.TableName) string {
	switch {
	case t.Schema.O != "":
		return t.Schema.O + "." + t.Name.O
	case c.db != "":
		return c.db + "." + t.Name.O
	default:
		return t.Name.O
	}
}

// meaningfulWhere reports whether a WHERE clause exists and may restrict
// rows by their values. These filter nothing and count as no WHERE:
//   - no column at all: WHERE 1, WHERE true, WHERE 1=1, WHERE @x;
//   - a column compared with itself: id = id, id <=> id, id >= id,
//     id BETWEEN id AND id, id IN (id);
//   - IS NOT NULL on a key-like column (id, *_id), which is never NULL;
//   - a disjunction with such a term: WHERE 1 OR id = 1, id = 1 OR id = id.
//
// This is a cheap syntactic check, not a proof: WHERE id > 0, id = 1 OR
// id <> 1 and the like still count as a WHERE. Bounding what a write may
// change is max_affected_rows' job.
func meaningfulWhere(e ast.ExprNode) bool {
	if e == nil {
		return false
	}
	return restricts(e, 0)
}

// restricts reports whether e may be false (or NULL) for some rows, by the
// rules meaningfulWhere lists.
func restricts(e ast.ExprNode, depth int) bool {
	if depth > 64 {
		return hasColumn(e) // deep nesting: fall back to "mentions a column"
	}
	switch x := e.(type) {
	case *ast.ParenthesesExpr:
		return restricts(x.Expr, depth+1)
	case *ast.BinaryOperationExpr:
		switch x.Op {
		case opcode.LogicAnd:
			return restricts(x.L, depth+1) || restricts(x.R, depth+1)
		case opcode.LogicOr:
			return restricts(x.L, depth+1) && restricts(x.R, depth+1)
		case opcode.EQ, opcode.NullEQ, opcode.GE, opcode.LE:
			if sameColumn(x.L, x.R) {
				return false
			}
		}
	case *ast.UnaryOperationExpr:
		if x.Op == opcode.Not || x.Op == opcode.Not2 {
			if n, ok := unparen(x.V).(*ast.IsNullExpr); ok && !n.Not {
				return !keyLike(n.Expr) && hasColumn(n.Expr)
			}
		}
	case *ast.IsNullExpr:
		if x.Not && keyLike(x.Expr) {
			return false
		}
	case *ast.BetweenExpr:
		if !x.Not && sameColumn(x.Expr, x.Left) && sameColumn(x.Expr, x.Right) {
			return false
		}
	case *ast.PatternInExpr:
		if !x.Not && x.Sel == nil {
			for _, v := range x.List {
				if sameColumn(x.Expr, v) {
					return false
				}
			}
		}
	}
	return hasColumn(e)
}

func hasColumn(e ast.ExprNode) bool {
	v := &columnFinder{}
	e.Accept(v)
	return v.found
}

func unparen(e ast.ExprNode) ast.ExprNode {
	for {
		p, ok := e.(*ast.ParenthesesExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// sameColumn reports whether a and b name the same column: equal names,
// and equal table and schema where both give one (in a statement that
// resolves, an unqualified name equal to a qualified one is that column).
func sameColumn(a, b ast.ExprNode) bool {
	ca, ok1 := unparen(a).(*ast.ColumnNameExpr)
	cb, ok2 := unparen(b).(*ast.ColumnNameExpr)
	if !ok1 || !ok2 || ca.Name == nil || cb.Name == nil {
		return false
	}
	x, y := ca.Name, cb.Name
	return x.Name.L == y.Name.L &&
		(x.Table.L == "" || y.Table.L == "" || x.Table.L == y.Table.L) &&
		(x.Schema.L == "" || y.Schema.L == "" || x.Schema.L == y.Schema.L)
}

// keyLike reports a column named id or *_id: a key, in practice never NULL.
func keyLike(e ast.ExprNode) bool {
	c, ok := unparen(e).(*ast.ColumnNameExpr)
	if !ok || c.Name == nil {
		return false
	}
	n := c.Name.Name.L
	return n == "id" || strings.HasSuffix(n, "_id")
}

type columnFinder struct{ found bool }

func (v *columnFinder) Enter(n ast.Node) (ast.Node, bool) {
	switch n.(type) {
	case *ast.ColumnNameExpr, *ast.SubqueryExpr, *ast.ExistsSubqueryExpr:
		v.found = true
		return n, true
	}
	return n, v.found
}

func (v *columnFinder) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// walker collects table names, CTE names, aliases and functions.
type walker struct {
	names   []*ast.TableName
	ctes    map[string]bool
	aliases map[string]*ast.TableName // alias or bare name → table
	targets map[*ast.TableName]bool
	funcs   map[string]bool
	stored  []*ast.FuncCallExpr // schema-qualified calls: stored functions
	outfile bool
}

func (w *walker) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		w.names = append(w.names, x)
	case *ast.TableSource:
		if t, ok := x.Source.(*ast.TableName); ok {
			w.aliases[t.Name.L] = t
			if x.AsName.L != "" {
				w.aliases[x.AsName.L] = t
			}
		}
	case *ast.CommonTableExpression:
		w.ctes[x.Name.L] = true
	case *ast.FuncCallExpr:
		w.fn(x.FnName.O)
		if x.Schema.L != "" {
			// db.f(): only a stored function is called that way.
			w.stored = append(w.stored, x)
		}
	case *ast.AggregateFuncExpr:
		w.fn(x.F)
	case *ast.WindowFuncExpr:
		w.fn(x.Name)
	case *ast.SelectStmt:
		if x.SelectIntoOpt != nil && x.SelectIntoOpt.Tp != ast.SelectIntoVars {
			w.outfile = true
		}
	}
	return n, false
}

func (w *walker) fn(name string) {
	if name == "" {
		return
	}
	if w.funcs == nil {
		w.funcs = map[string]bool{}
	}
	w.funcs[strings.ToUpper(name)] = true
}

func (w *walker) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// kindOf names a statement's kind: SELECT, INSERT, DROP_TABLE, ...
func kindOf(n ast.StmtNode) string {
	switch x := n.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt:
		return "SELECT"
	case *ast.InsertStmt:
		if x.IsReplace {
			return "REPLACE"
		}
		return "INSERT"
	case *ast.UpdateStmt:
		return "UPDATE"
	case *ast.DeleteStmt:
		return "DELETE"
	case *ast.DropTableStmt:
		if x.IsView {
			return "DROP_VIEW"
		}
		return "DROP_TABLE"
	case *ast.TruncateTableStmt:
		return "TRUNCATE"
	case *ast.LoadDataStmt:
		return "LOAD_DATA"
	case *ast.GrantStmt, *ast.GrantRoleStmt, *ast.GrantProxyStmt:
		return "GRANT"
	case *ast.RevokeStmt, *ast.RevokeRoleStmt:
		return "REVOKE"
	case *ast.SetStmt:
		return "SET"
	case *ast.SetPwdStmt:
		return "SET_PASSWORD"
	case *ast.BeginStmt:
		return "BEGIN"
	case *ast.ProcedureInfo:
		return "CREATE_PROCEDURE"
	}
	// Everything else by its type name: CreateTableStmt → CREATE_TABLE.
	name := reflect.TypeOf(n).Elem().Name()
	name = strings.TrimSuffix(name, "Stmt")
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(name[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// kindRank orders kinds by how much damage they can do; a multi-statement's
// Kind is its highest-ranked one.
func kindRank(kind string) int {
	switch {
	case kind == "DROP_TABLE" || kind == "DROP_DATABASE" || kind == "TRUNCATE":
		return 100
	case kind == KindUnparsed:
		return 95
	case strings.HasPrefix(kind, "DROP_"):
		return 90
	case kind == "GRANT" || kind == "REVOKE" || kind == "SET_PASSWORD" ||
		strings.HasSuffix(kind, "_USER") || kind == "SHUTDOWN" || kind == "KILL":
		return 85
	case strings.HasPrefix(kind, "CREATE_") || strings.HasPrefix(kind, "ALTER_") ||
		strings.HasPrefix(kind, "RENAME_") || kind == "OPTIMIZE_TABLE" || kind == "REPAIR_TABLE" ||
		kind == "FLASH_BACK_TABLE" || kind == "RECOVER_TABLE":
		return 80
	case kind == "DELETE" || kind == "UPDATE":
		return 60
	case kind == "LOAD_DATA" || kind == "IMPORT_INTO":
		return 55
	case kind == "INSERT" || kind == "REPLACE":
		return 50
	case kind == "CALL" || kind == "EXECUTE" || kind == "PREPARE" || kind == "DO":
		return 45
	case kind == "LOCK_TABLES" || kind == "FLUSH":
		return 40
	case kind == "SET":
		return 30
	case kind == "SELECT" || kind == "EXPLAIN" || kind == "TRACE":
		return 10
	default: // SHOW, USE, BEGIN, COMMIT, ROLLBACK, DEALLOCATE, ...
		return 1
	}
}
