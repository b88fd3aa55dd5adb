package replay

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// ErrRecordedBackend is returned when the target is the session's recorded
// backend and Force is not set.
var ErrRecordedBackend = errors.New("target is the recorded backend")

// Options configures a replay.
type Options struct {
	Dir     string // audit journal dir
	Session string // session id
	Target  string // go-sql-driver DSN of the test database
	Force   bool   // allow targeting the recorded backend
	Log     *slog.Logger
	Timeout time.Duration // per statement (default 30s)
}

// Result is the replay verdict for one recorded statement.
type Result struct {
	StatementID uint64 `json:"statement_id"`
	Seq         uint64 `json:"seq"`
	Command     string `json:"command"`
	SQL         string `json:"sql,omitempty"`
	// Verdict is match | diverged | skipped.
	Verdict string   `json:"verdict"`
	Reasons []string `json:"reasons,omitempty"`

	WantStatus   string  `json:"want_status,omitempty"`
	WantRows     *uint64 `json:"want_rows,omitempty"`
	GotRows      *uint64 `json:"got_rows,omitempty"`
	WantAffected *uint64 `json:"want_affected_rows,omitempty"`
	GotAffected  *uint64 `json:"got_affected_rows,omitempty"`
	WantError    uint16  `json:"want_error,omitempty"`
	GotError     uint16  `json:"got_error,omitempty"`
}

// Verdicts.
const (
	Match    = "match"
	Diverged = "diverged"
	Skipped  = "skipped"
)

// Report is the replay of one session.
type Report struct {
	Session  string   `json:"session"`
	Backend  string   `json:"recorded_backend,omitempty"`
	Results  []Result `json:"results"`
	Matched  int      `json:"matched"`
	Diverged int      `json:"diverged"`
	Skipped  int      `json:"skipped"`
}

// OK reports whether every replayed statement matched.
func (r *Report) OK() bool { return r.Diverged == 0 }

type pair struct {
	stmt, out *record.Record
}

// Run replays the session. Statements run in recorded order on one
// connection, so USE / COM_INIT_DB and session variables carry over as they
// did; prepared statements run as server-side prepared statements with
// their recorded parameters. Statements the policy blocked are skipped.
func Run(ctx context.Context, opt Options) (*Report, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	recs, err := audit.ReadSession(opt.Dir, opt.Session)
	if err != nil {
		return nil, err
	}
	rep := &Report{Session: opt.Session}
	var pairs []*pair
	byID := map[uint64]*pair{}
	for _, r := range recs {
		switch r.Event {
		case record.EventSessionStart:
			if r.Backend != nil {
				rep.Backend = r.Backend.Address
			}
		case record.EventStatement:
			p := &pair{stmt: r}
			pairs = append(pairs, p)
			byID[r.StatementID] = p
		case record.EventOutcome:
			if p := byID[r.StatementID]; p != nil {
				p.out = r
			}
		}
	}
	mcfg, err := mysql.ParseDSN(opt.Target)
	if err != nil {
		return nil, fmt.Errorf("parse target dsn: %w", err)
	}
	if rep.Backend != "" && !opt.Force && sameAddress(mcfg.Net, mcfg.Addr, rep.Backend) {
		return nil, fmt.Errorf("replay session %s: %w %s (use --force to replay against it anyway)", opt.Session, ErrRecordedBackend, rep.Backend)
	}
	mcfg.MultiStatements = true
	mcfg.InterpolateParams = false
	connector, err := mysql.NewConnector(mcfg)
	if err != nil {
		return nil, fmt.Errorf("target dsn: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect target: %w", err)
	}
	defer conn.Close()

	curDB := mcfg.DBName
	for _, p := range pairs {
		res := replayOne(ctx, conn, opt, p, &curDB)
		switch res.Verdict {
		case Match:
			rep.Matched++
		case Diverged:
			rep.Diverged++
		default:
			rep.Skipped++
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func sameAddress(netw, addr, recorded string) bool {
	if netw == "unix" {
		return false
	}
	h1, p1, err1 := net.SplitHostPort(addr)
	h2, p2, err2 := net.SplitHostPort(recorded)
	if err1 != nil || err2 != nil {
		return addr == recorded
	}
	if p1 != p2 {
		return false
	}
	if strings.EqualFold(h1, h2) {
		return true
	}
	a1, _ := net.LookupHost(h1)
	a2, _ := net.LookupHost(h2)
	for _, x := range a1 {
		for _, y := range a2 {
			if net.ParseIP(x).Equal(net.ParseIP(y)) || (isLoopback(x) && isLoopback(y)) {
				return true
			}
		}
	}
	return false
}

func isLoopback(s string) bool { ip := net.ParseIP(s); return ip != nil && ip.IsLoopback() }

func replayOne(ctx context.Context, conn *sql.Conn, opt Options, p *pair, curDB *string) Result {
	st, out := p.stmt, p.out
	text := st.Text() // the exact bytes that ran, even when not UTF-8
	res := Result{StatementID: st.StatementID, Seq: st.Seq, Command: st.Command, SQL: st.SQL}
	if out == nil {
		res.Verdict, res.Reasons = Skipped, []string{"no outcome recorded (connection ended or daemon stopped)"}
		return res
	}
	res.WantStatus, res.WantRows, res.WantAffected = out.Status, out.Rows, out.AffectedRows
	if out.Error != nil {
		res.WantError = out.Error.Code
	}
	if out.Status == record.StatusBlocked {
		res.Verdict, res.Reasons = Skipped, []string{"blocked by policy when recorded"}
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()

	// the database the statement ran in
	if st.DB != "" && st.DB != *curDB && st.Command != "COM_INIT_DB" {
		if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(st.DB)); err != nil {
			res.Verdict, res.Reasons = Diverged, []string{fmt.Sprintf("switch to database %s: %v", st.DB, err)}
			return res
		}
		*curDB = st.DB
	}
	var (
		rows, affected uint64
		digest         string
		retained       [][]any
		haveRows       bool
		err            error
	)
	switch st.Command {
	case "COM_QUERY", "":
		if wantsRows(out) {
			rows, digest, retained, err = query(ctx, conn, text, nil, len(out.Results))
			haveRows = true
		} else {
			affected, err = exec(ctx, conn, text, nil)
		}
		if err == nil && isUse(text) {
			*curDB = strings.Trim(strings.TrimSpace(text)[4:], " `;\t\n")
		}
	case "COM_INIT_DB":
		// The proxy records COM_INIT_DB as "USE `name`"; a bare name is accepted too.
		name := st.DB
		if text != "" {
			name = text
			if isUse(name) {
				name = unquoteIdent(strings.TrimSpace(name)[4:])
			}
		}
		_, err = conn.ExecContext(ctx, "USE "+quoteIdent(name))
		if err == nil {
			*curDB = name
		}
	case "COM_STMT_EXECUTE":
		args := make([]any, len(st.Params))
		for i, prm := range st.Params {
			args[i] = paramValue(prm)
		}
		if wantsRows(out) {
			rows, digest, retained, err = query(ctx, conn, text, args, len(out.Results))
			haveRows = true
		} else {
			affected, err = exec(ctx, conn, text, args)
		}
	default:
		res.Verdict, res.Reasons = Skipped, []string{"command " + st.Command + " is not replayed"}
		return res
	}

	var me *mysql.MySQLError
	switch {
	case err != nil && errors.As(err, &me):
		res.GotError = me.Number
	case err != nil:
		res.Verdict, res.Reasons = Diverged, []string{"execute: " + err.Error()}
		return res
	}
	if res.WantError != res.GotError {
		if res.GotError == 0 {
			res.Reasons = append(res.Reasons, fmt.Sprintf("recorded error %d, replay succeeded", res.WantError))
		} else {
			res.Reasons = append(res.Reasons, fmt.Sprintf("recorded error %d, replay got error %d: %v", res.WantError, res.GotError, err))
		}
	}
	if err == nil {
		if haveRows {
			res.GotRows = &rows
			if out.Rows != nil && *out.Rows != rows {
				res.Reasons = append(res.Reasons, fmt.Sprintf("rows: recorded %d, replay %d", *out.Rows, rows))
			}
			if out.ResultDigest != "" && out.ResultDigest != digest {
				res.Reasons = append(res.Reasons, "row contents differ (result digest)")
			}
			if len(out.Results) > 0 {
				if i, ok := sameResults(out.Results, retained); !ok {
					res.Reasons = append(res.Reasons, fmt.Sprintf("row %d differs from the retained result", i+1))
				}
			}
		} else {
			res.GotAffected = &affected
			if out.AffectedRows != nil && *out.AffectedRows != affected {
				res.Reasons = append(res.Reasons, fmt.Sprintf("affected rows: recorded %d, replay %d", *out.AffectedRows, affected))
			}
		}
	}
	if len(res.Reasons) > 0 {
		res.Verdict = Diverged
	} else {
		res.Verdict = Match
	}
	return res
}

func wantsRows(out *record.Record) bool {
	return len(out.Columns) > 0 || (out.Rows != nil && out.AffectedRows == nil) || out.ResultDigest != "" || len(out.Results) > 0
}

func isUse(s string) bool {
	s = strings.TrimRight(strings.TrimSpace(s), "; ")
	return len(s) > 4 && strings.EqualFold(s[:4], "use ") && !strings.Contains(s, ";")
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func unquoteIdent(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "; ")
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

func exec(ctx context.Context, conn *sql.Conn, q string, args []any) (uint64, error) {
	var (
		r   sql.Result
		err error
	)
	if args != nil {
		stmt, perr := conn.PrepareContext(ctx, q)
		if perr != nil {
			return 0, perr
		}
		defer stmt.Close()
		r, err = stmt.ExecContext(ctx, args...)
	} else {
		r, err = conn.ExecContext(ctx, q)
	}
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return uint64(n), err
}

// query runs q and counts rows over every result set, digesting them as
// RowDigest does and keeping the first keep rows as strings.
func query(ctx context.Context, conn *sql.Conn, q string, args []any, keep int) (uint64, string, [][]any, error) {
	var (
		rs  *sql.Rows
		err error
	)
	if args != nil {
		stmt, perr := conn.PrepareContext(ctx, q)
		if perr != nil {
			return 0, "", nil, perr
		}
		defer stmt.Close()
		rs, err = stmt.QueryContext(ctx, args...)
	} else {
		rs, err = conn.QueryContext(ctx, q)
	}
	if err != nil {
		return 0, "", nil, err
	}
	defer rs.Close()
	d := record.NewRowDigest()
	var kept [][]any
	for {
		cols, err := rs.Columns()
		if err != nil {
			return 0, "", nil, err
		}
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		row := make([][]byte, len(cols))
		for rs.Next() {
			if err := rs.Scan(ptrs...); err != nil {
				return 0, "", nil, err
			}
			for i, v := range vals {
				if v == nil {
					row[i] = nil
				} else {
					row[i] = []byte(v)
				}
			}
			d.AddRow(row)
			if len(kept) < keep {
				k := make([]any, len(vals))
				for i, v := range vals {
					if v != nil {
						k[i] = string(v)
					}
				}
				kept = append(kept, k)
			}
		}
		if err := rs.Err(); err != nil {
			return 0, "", nil, err
		}
		if !rs.NextResultSet() {
			break
		}
	}
	return d.Rows(), d.Sum(), kept, rs.Err()
}

func sameResults(want [][]any, got [][]any) (int, bool) {
	for i, w := range want {
		if i >= len(got) || len(w) != len(got[i]) {
			return i, false
		}
		for c := range w {
			if fmt.Sprint(normalize(w[c])) != fmt.Sprint(normalize(got[i][c])) {
				return i, false
			}
		}
	}
	return 0, true
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case nil:
		return "<NULL>"
	}
	return v
}

// paramValue converts a recorded parameter to a driver argument. Numbers
// keep their integer-ness (the journal decodes them as json.Number).
func paramValue(p record.Param) any {
	switch v := p.Value.(type) {
	case nil:
		return nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return u
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	case float64:
		return v
	case bool:
		return v
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
