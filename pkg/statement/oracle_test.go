package statement

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// The oracle: statements full of comments of every kind and version,
// strings with backslashes and quotes, quoted identifiers, in every sql_mode
// the proxy follows, are classified and then run on the private MariaDB
// (inside a transaction that is rolled back). What the server ran — the
// statements performance_schema recorded, and how many rows each write
// touched — must be what the classification says: the kinds in order, the
// statement count, and has_where (every WHERE the generator writes matches
// exactly one row, so a write that touched them all had none). A refusal or
// an unparsed text is the safe side and only counted.

const oracleRows = 8

var oracleModes = []string{
	"", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", "ANSI", "PIPES_AS_CONCAT", "IGNORE_SPACE", "HIGH_NOT_PRECEDENCE",
	"NO_BACKSLASH_ESCAPES,ANSI_QUOTES", "ANSI,NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES,HIGH_NOT_PRECEDENCE,PIPES_AS_CONCAT",
}

type oracle struct {
	t      testing.TB
	c      *wire.Conn
	root   *sql.DB
	db     string // this process's schema
	thread int64
	server sqltext.Server
	mode   string
	d      sqltext.Dialect

	ran, refused, unparsed, serverErr int
}

var (
	oracleMu   sync.Mutex
	oracleConn *oracle
)

// newOracle sets up the fixture and one session (shared by the tests of a
// process: the setup is the slow part).
func newOracle(t testing.TB) *oracle {
	oracleMu.Lock()
	defer oracleMu.Unlock()
	if oracleConn != nil {
		oracleConn.t = t
		return oracleConn
	}
	m := testutil.StartMariaDB(t)
	root, err := sql.Open("mysql", m.DSN(m.Root, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	var ps int
	if err := root.QueryRow("SELECT @@performance_schema").Scan(&ps); err != nil || ps != 1 {
		t.Fatalf("performance_schema is %d (%v) on the private MariaDB: scripts/mariadb.sh starts it on; restart an instance started before", ps, err)
	}
	// Each process has its own schema: `go test -fuzz` runs the target in
	// several worker processes at once, and one's fixture must not delete
	// or duplicate the rows another is comparing against. The schemas of
	// processes that are gone are dropped.
	db := fmt.Sprintf("sworacle_%d", os.Getpid())
	dropStaleOracleSchemas(t, root)
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".t (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB",
		"DELETE FROM " + db + ".t",
		"UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ('events_statements_current', 'events_statements_history')",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := 1; i <= oracleRows; i++ {
		if _, err := root.Exec(fmt.Sprintf("INSERT INTO %s.t VALUES (%d, 'row %d')", db, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := net.DialTimeout("tcp", m.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := wire.NewConn(nc, 1<<24)
	info, err := wire.ClientHandshake(c, &wire.ClientConfig{User: m.Root, DB: db, Collation: 45,
		Capabilities: gm.CLIENT_MULTI_STATEMENTS | gm.CLIENT_MULTI_RESULTS | gm.CLIENT_FOUND_ROWS})
	if err != nil {
		t.Fatal(err)
	}
	o := &oracle{t: t, c: c, root: root, db: db, server: sqltext.ParseServerVersion(info.Version), mode: "-"}
	if err := root.QueryRow("SELECT THREAD_ID FROM performance_schema.threads WHERE PROCESSLIST_ID = ?", info.ConnectionID).Scan(&o.thread); err != nil {
		t.Fatalf("thread of the oracle session: %v", err)
	}
	oracleConn = o
	return o
}

// dropStaleOracleSchemas drops the oracle schemas of processes no longer
// running (fuzz workers are stopped, never cleaned up after).
func dropStaleOracleSchemas(t testing.TB, root *sql.DB) {
	rs, err := root.Query(`SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'sworacle\\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for rs.Next() {
		var name string
		if err := rs.Scan(&name); err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(name, "sworacle_"))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			stale = append(stale, name)
		}
	}
	rs.Close()
	for _, name := range stale {
		// Another process may be dropping it too.
		if _, err := root.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	}
}

func (o *oracle) setMode(mode string) {
	if mode == o.mode {
		return
	}
	o.simple("SET SESSION sql_mode = '" + mode + "'")
	rows, err := wire.SimpleQuery(o.c, "SELECT @@session.sql_mode")
	if err != nil {
		o.t.Fatal(err)
	}
	m, err := sqltext.ParseSQLMode(rows[0][0])
	if err != nil {
		o.t.Fatalf("sql_mode %q: %v", rows[0][0], err)
	}
	o.mode, o.d = mode, sqltext.Dialect{Server: o.server, Mode: m}
}

func (o *oracle) simple(q string) {
	if _, err := wire.SimpleQuery(o.c, q); err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
}

// event is one statement performance_schema saw the session run.
type event struct {
	kind     string
	affected int64
	errno    int // errors the statement raised (warnings do not count)
	digest   string
}

var eventKinds = map[string]string{
	"statement/sql/delete": "DELETE", "statement/sql/delete_multi": "DELETE",
	"statement/sql/update": "UPDATE", "statement/sql/update_multi": "UPDATE",
	"statement/sql/select": "SELECT",
}

func (o *oracle) lastEvent() int64 {
	var id sql.NullInt64
	if err := o.root.QueryRow("SELECT MAX(EVENT_ID) FROM performance_schema.events_statements_history WHERE THREAD_ID = ?", o.thread).Scan(&id); err != nil {
		o.t.Fatal(err)
	}
	return id.Int64
}

func (o *oracle) events(after int64) []event {
	rs, err := o.root.Query("SELECT EVENT_NAME, ROWS_AFFECTED, ERRORS, COALESCE(DIGEST_TEXT, '') FROM performance_schema.events_statements_history WHERE THREAD_ID = ? AND EVENT_ID > ? ORDER BY EVENT_ID", o.thread, after)
	if err != nil {
		o.t.Fatal(err)
	}
	defer rs.Close()
	var out []event
	for rs.Next() {
		var name string
		var e event
		if err := rs.Scan(&name, &e.affected, &e.errno, &e.digest); err != nil {
			o.t.Fatal(err)
		}
		e.kind = eventKinds[name]
		if e.kind == "" {
			e.kind = name
		}
		out = append(out, e)
	}
	return out
}

// run sends q as one COM_QUERY and reads every result.
func (o *oracle) run(q string) error {
	o.c.Seq = 0
	if err := o.c.WritePacket(append([]byte{gm.COM_QUERY}, q...)); err != nil {
		return err
	}
	if err := o.c.Flush(); err != nil {
		return err
	}
	var t wire.Tracker
	t.Start(wire.ReplyResult, false)
	for !t.Done() {
		p, _, err := o.c.ReadPacket()
		if err != nil {
			o.t.Fatalf("%q: %v", q, err)
		}
		if _, err := t.Feed(p); err != nil {
			o.t.Fatalf("%q: %v", q, err)
		}
	}
	if t.Err != nil {
		return t.Err
	}
	return nil
}

// check classifies q in mode, runs it, and compares.
func (o *oracle) check(mode, q string) {
	o.setMode(mode)
	st := ClassifyAs(q, o.db, o.d)
	before := o.lastEvent()
	o.simple("BEGIN")
	runErr := o.run(q)
	evs := o.events(before)
	o.simple("ROLLBACK")
	// The history shows the ROLLBACK only after every statement before it;
	// it is written as the reply goes out, so wait for it.
	for i := 0; ; i++ {
		if n := len(evs); n > 0 && evs[n-1].kind == "statement/sql/rollback" {
			evs = evs[:n-1]
			break
		}
		if i == 200 {
			o.t.Fatalf("%q: performance_schema never showed the ROLLBACK after it", q)
		}
		time.Sleep(time.Millisecond)
		evs = o.events(before)
	}
	// What the session ran before the oracle's BEGIN (its own reads) is not
	// the statement's.
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].kind == "statement/sql/begin" {
			evs = evs[i+1:]
			break
		}
	}
	var ran []event
	for _, e := range evs {
		if e.errno != 0 {
			break
		}
		if e.kind == "statement/sql/empty_query" {
			continue // a trailing ";" or "; -- comment": nothing ran
		}
		ran = append(ran, e)
	}
	if runErr != nil {
		o.serverErr++
	}
	switch {
	case st.Refused != "":
		o.refused++
		return
	case !st.Parsed:
		o.unparsed++
		return
	}
	o.ran++
	fail := func(format string, args ...any) {
		o.t.Helper()
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "\n  server: %s affected=%d errno=%d %q", e.kind, e.affected, e.errno, e.digest)
		}
		o.t.Errorf("sql_mode %q: %q\n  %s\n  classified: kinds %v count %d has_where %v (text %q)%s",
			mode, q, fmt.Sprintf(format, args...), st.Kinds, st.Count, st.HasWhere, st.Text, b.String())
	}
	if len(ran) > st.Count {
		fail("the server ran %d statements, the classification has %d", len(ran), st.Count)
		return
	}
	for i, e := range ran {
		if st.Kinds[i] != e.kind {
			fail("statement %d: the server ran %s", i+1, e.kind)
			return
		}
	}
	if runErr != nil {
		return // the server stopped early: only what ran is compared
	}
	if len(ran) != st.Count {
		fail("the server ran %d statements without error, the classification has %d", len(ran), st.Count)
		return
	}
	// A write touched one row (its WHERE held) or every row left (it had
	// none); when at most one row is left the two cannot be told apart.
	writes, bounded, left, ambiguous := 0, 0, int64(oracleRows), false
	for _, e := range ran {
		if e.kind != "DELETE" && e.kind != "UPDATE" {
			continue
		}
		writes++
		switch {
		case left <= 1:
			ambiguous = true
		case e.affected == 1:
			bounded++
		case e.affected != left:
			fail("a write touched %d of %d rows: the generator's WHERE matches one row or none is written", e.affected, left)
			return
		}
		if e.kind == "DELETE" {
			left -= e.affected
		}
	}
	if ambiguous {
		return
	}
	if writes > 0 && st.HasWhere != (bounded == writes) {
		fail("has_where %v, but %d of %d writes touched one row", st.HasWhere, bounded, writes)
	}
}

// gen writes a statement: one to three SELECTs, at most one of them a
// DELETE or UPDATE instead, each with a WHERE matching one row or none, decorated with the constructs whose
// reading depends on the server, its version and the sql_mode.
func gen(r *rand.Rand, server sqltext.Server) string {
	n := 1
	if r.Intn(4) == 0 {
		n += 1 + r.Intn(2)
	}
	// At most one write: its rows touched then say alone whether it had a WHERE.
	write := r.Intn(n)
	var parts []string
	for i := range n {
		parts = append(parts, genOne(r, server, i == write))
	}
	seps := []string{";", "; ", ";\n", " ;"}
	return strings.Join(parts, seps[r.Intn(len(seps))])
}

var oracleValues = []string{
	`'x'`, `'a\'b'`, `'it''s'`, `"dq"`, `"d\"q"`, `'a\\'`, `'1\' -- '`, `'#'`, `'/*'`, `'*/'`, `'--'`,
	`"\" -- "`, `x'41'`, `_utf8mb4'x'`, `N'x'`, `'x' 'y'`, `v || 'x'`, `CONCAT(v, 'x')`, `CONCAT('\', v) -- ', v)`,
	"`v`", `"v"`, `'\''`, `'\\\''`, `""""`, `''''`, `CONCAT ('a', v)`, `NOT 0`, `'a\'; DELETE FROM t; -- '`,
	`"a\"; DELETE FROM t; -- "`, `'/*!50700 x */'`, `'\"'`,
}

func genOne(r *rand.Rand, server sqltext.Server, mayWrite bool) string {
	var head string
	switch k := r.Intn(5); {
	case mayWrite && k < 2:
		head = "DELETE FROM t"
	case mayWrite && k < 4:
		head = "UPDATE t SET v = " + oracleValues[r.Intn(len(oracleValues))]
	default:
		head = "SELECT " + oracleValues[r.Intn(len(oracleValues))] + " FROM t"
	}
	tail := fmt.Sprintf(" WHERE id = %d", 1+r.Intn(oracleRows))
	if r.Intn(6) == 0 {
		tail = ""
	}
	for w := r.Intn(3); w > 0; w-- {
		tail = wrap(r, tail, server)
	}
	return head + tail
}

func wrap(r *rand.Rand, s string, server sqltext.Server) string {
	v := server.Version
	versions := []string{"", "50699", "50700", "57000", "99999", "100000", fmt.Sprintf("%06d", v), fmt.Sprintf("%06d", v+1), "999999", "1000000", "1234"}
	ver := versions[r.Intn(len(versions))]
	switch r.Intn(14) {
	case 0:
		return " /*" + s + " */"
	case 1:
		return " /*!" + ver + s + " */"
	case 2:
		return " /*M!" + ver + s + " */"
	case 3:
		return " /*m!" + ver + s + " */"
	case 4:
		return " /*T![clustered_index]" + s + " */"
	case 5:
		return " /*+" + s + " */"
	case 6:
		return " -- c\n" + s
	case 7:
		return " #c\n" + s
	case 8:
		return " --" + s // not a comment when no space follows
	case 9:
		return " -- " + s
	case 10:
		return " /*!99999 /* nested */" + s + " */"
	case 11:
		return " AND 1 " + s // a syntax error either way, usually
	case 12:
		return s + " -- ' \n"
	default:
		return s + " /* ' \" ` */"
	}
}

// TestClassifyMatchesServer runs the oracle for a fixed time (12 s, or
// SQLWARDEN_ORACLE_TIME) with a seed per run, logged for replay.
func TestClassifyMatchesServer(t *testing.T) {
	d := 12 * time.Second
	if v := os.Getenv("SQLWARDEN_ORACLE_TIME"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv("SQLWARDEN_ORACLE_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("seed %d (SQLWARDEN_ORACLE_SEED replays it)", seed)
	o := newOracle(t)
	r := rand.New(rand.NewSource(seed))
	for end := time.Now().Add(d); time.Now().Before(end) && !t.Failed(); {
		o.check(oracleModes[r.Intn(len(oracleModes))], gen(r, o.server))
	}
	t.Logf("compared %d statements the parser read, %d refused, %d unparsed; the server failed %d", o.ran, o.refused, o.unparsed, o.serverErr)
	if o.ran < 100 {
		t.Errorf("only %d statements compared: the generator produces too little the parser reads", o.ran)
	}
}

// FuzzClassifyMatchesServer is the oracle as a fuzz target: the fuzzer
// chooses the generator's seed and the sql_mode (make fuzz runs it longer).
func FuzzClassifyMatchesServer(f *testing.F) {
	for i := range int64(8) {
		f.Add(i, uint8(i))
	}
	f.Fuzz(func(t *testing.T, seed int64, mode uint8) {
		o := newOracle(t)
		r := rand.New(rand.NewSource(seed))
		o.check(oracleModes[int(mode)%len(oracleModes)], gen(r, o.server))
	})
}
