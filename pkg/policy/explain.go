package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// Outcome is how `sqlwarden policy test` ends; its value is the command's
// exit status.
type Outcome int

// Outcomes of Explain.
const (
	OutcomeAllow   Outcome = 0
	OutcomeDeny    Outcome = 1
	OutcomeApprove Outcome = 2
	OutcomeInvalid Outcome = 3 // the policy file or the arguments are invalid
)

// ExplainOptions are the inputs of Explain besides the SQL.
type ExplainOptions struct {
	File     string   // policy file; empty: the built-in policy
	Identity string   // identity name the statement comes from
	Groups   []string // identity groups
	DB       string   // current database, to qualify table names
	User     string   // the user name the client typed (session.user)
	Command  string   // protocol command (session.command)
	JSON     bool     // print JSON
	Server   string   // the server's version string (decides executable comments)
	SQLMode  string   // the session's sql_mode
}

// LimitRow is one limit in force, as `policy test` shows it.
type LimitRow struct {
	Kind     string `json:"kind"`
	Value    any    `json:"value"`
	Limit    string `json:"limit"` // the entry that set it
	OnExceed string `json:"on_exceed,omitempty"`
}

func limitRows(l record.Limits) []LimitRow {
	rows := []LimitRow{}
	for k := record.LimitKind(0); k < record.NumLimitKinds; k++ {
		if !l.IsSet(k) {
			continue
		}
		r := LimitRow{Kind: k.String(), Value: l.Value(k), Limit: l.By[k]}
		switch k {
		case record.LimitMaxRows:
			r.OnExceed = onExceed(l.TruncateRows)
		case record.LimitMaxResultBytes:
			r.OnExceed = onExceed(l.TruncateBytes)
		}
		rows = append(rows, r)
	}
	return rows
}

func onExceed(truncate bool) string {
	if truncate {
		return OnExceedTruncate
	}
	return OnExceedError
}

func printLimits(w io.Writer, identity string, rows []LimitRow) {
	if len(rows) == 0 {
		fmt.Fprintf(w, "limits:          none for identity %q\n", identity)
		return
	}
	fmt.Fprintf(w, "limits:          for identity %q\n", identity)
	for _, r := range rows {
		v := fmt.Sprint(r.Value)
		if r.Kind == record.LimitMaxResultBytes.String() {
			v = fmt.Sprintf("%v (%s)", r.Value, ByteSize(r.Value.(uint64)))
		}
		if r.OnExceed != "" {
			v += ", on_exceed " + r.OnExceed
		}
		fmt.Fprintf(w, "  %-26s %s  [%s]\n", r.Kind+":", v, r.Limit)
	}
}

// Explain prints, for `sqlwarden policy test`, how the policy in o.File
// (the built-in one when empty) classifies and decides sql and, with an
// identity, the limits in force for it; it returns how the statement ends.
// An empty sql prints only the limits.
func Explain(w io.Writer, o ExplainOptions, sql string) (Outcome, error) {
	e, err := Load(o.File)
	if err != nil {
		return OutcomeInvalid, err
	}
	var limits []LimitRow
	if o.Identity != "" {
		limits = limitRows(e.LimitsFor(o.Identity))
	}
	if sql == "" {
		if o.JSON {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return OutcomeAllow, enc.Encode(struct {
				Identity string     `json:"identity"`
				Limits   []LimitRow `json:"limits"`
			}{o.Identity, limits})
		}
		printLimits(w, o.Identity, limits)
		return OutcomeAllow, nil
	}
	dialect := sqltext.Dialect{Server: sqltext.ParseServerVersion(o.Server)}
	if dialect.Mode, err = sqltext.ParseSQLMode(o.SQLMode); err != nil {
		return OutcomeInvalid, err
	}
	st := statement.ClassifyAs(sql, o.DB, dialect)
	var id *record.Identity
	if o.Identity != "" || len(o.Groups) > 0 {
		id = &record.Identity{Name: o.Identity, Source: "static", Groups: o.Groups}
	}
	d := e.Decide(id, st, statement.Session{ID: "policy-test", DB: o.DB, User: o.User, Command: o.Command})
	if st.Refused != "" {
		d = statement.Verdict{Rule: "sql-text", Action: record.ActionDeny, Message: st.Refused}
	}
	code := OutcomeAllow
	switch d.Action {
	case record.ActionDeny:
		code = OutcomeDeny
	case record.ActionApprove:
		code = OutcomeApprove
	}
	var verdicts []LimitVerdict
	if o.Identity != "" && st.Refused == "" {
		verdicts = limitVerdicts(e.LimitsFor(o.Identity), sql, st, o.DB)
		for _, v := range verdicts {
			if v.Refused {
				code = OutcomeDeny // the proxy refuses it before policy
			}
		}
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		st.Nodes = nil
		return code, enc.Encode(struct {
			Statement *statement.Statement `json:"classification"`
			Decision  statement.Verdict    `json:"decision"`
			Limits    []LimitRow           `json:"limits,omitempty"`
			Verdicts  []LimitVerdict       `json:"limit_verdicts,omitempty"`
		}{st, d, limits, verdicts})
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "kind:            %s\n", st.Kind)
	if st.Count > 1 || (len(st.Kinds) == 1 && st.Kinds[0] != st.Kind) {
		fmt.Fprintf(w, "statements:      %d (%s)\n", st.Count, list(st.Kinds))
	}
	if st.Refused != "" {
		fmt.Fprintf(w, "refused:         %s (the proxy refuses it whatever the policy says)\n", st.Refused)
	} else if !st.Parsed {
		fmt.Fprintf(w, "parse error:     %s\n", st.Err)
	}
	fmt.Fprintf(w, "ddl:             %v\n", st.IsDDL)
	fmt.Fprintf(w, "tables read:     %s\n", list(st.TablesRead))
	fmt.Fprintf(w, "tables written:  %s\n", list(st.TablesWritten))
	fmt.Fprintf(w, "where / limit:   %v / %v\n", st.HasWhere, st.HasLimit)
	if st.IntoOutfile {
		fmt.Fprintf(w, "into outfile:    true\n")
	}
	if st.DynamicSQL {
		fmt.Fprintf(w, "dynamic sql:     true\n")
	}
	if len(st.Routines) > 0 {
		fmt.Fprintf(w, "routines:        %s\n", list(st.Routines))
	}
	if st.AccountManagement {
		fmt.Fprintf(w, "account mgmt:    true\n")
	}
	if st.SetsGlobal {
		fmt.Fprintf(w, "sets global:     true\n")
	}
	if st.FileIO {
		fmt.Fprintf(w, "server file i/o: true\n")
	}
	if len(st.CredentialTables) > 0 {
		fmt.Fprintf(w, "credentials:     %s (always refused)\n", list(st.CredentialTables))
	}
	if st.SetsPassword {
		fmt.Fprintf(w, "sets password:   true (always refused)\n")
	}
	fmt.Fprintf(w, "functions:       %s\n", list(st.Functions))
	fmt.Fprintf(w, "digest:          %s\n", st.Digest)
	fmt.Fprintf(w, "rule:            %s\n", d.Rule)
	fmt.Fprintf(w, "action:          %s\n", d.Action)
	if d.Message != "" {
		fmt.Fprintf(w, "message:         %s\n", d.Message)
	}
	if d.Action == record.ActionApprove {
		// hold: the client waits for the decision; retry: refused at once
		// with a request id, the identical statement runs once approved.
		if d.ApprovalMode != "" {
			fmt.Fprintf(w, "approval mode:   %s (rule %s)\n", d.ApprovalMode, d.Rule)
		} else {
			fmt.Fprintf(w, "approval mode:   policy.approvals.mode of the daemon (hold unless set)\n")
		}
	}
	for _, v := range verdicts {
		fmt.Fprintf(w, "%-16s %s  [%s]\n", v.Kind+":", v.Verdict, v.Limit)
	}
	if o.Identity != "" {
		printLimits(w, o.Identity, limits)
	}
	return code, nil
}

// LimitVerdict is how a statement-judging limit treats the statement.
type LimitVerdict struct {
	Kind    string `json:"kind"`
	Limit   string `json:"limit"`
	Refused bool   `json:"refused"`
	Verdict string `json:"verdict"`
}

// limitVerdicts judges a statement as the proxy's read_only and
// max_affected_rows limits would, as far as that can be done without the
// server (views and storage engines are looked up there).
func limitVerdicts(l record.Limits, sql string, st *statement.Statement, db string) []LimitVerdict {
	var out []LimitVerdict
	if l.ReadOnly {
		v := LimitVerdict{Kind: "read_only", Limit: l.By[record.LimitReadOnly], Verdict: "admitted (views it reads are judged against the server)"}
		if why, _ := statement.ReadOnly(sql, st, db, nil); why != "" {
			v.Refused, v.Verdict = true, "refused: "+why
		}
		out = append(out, v)
	}
	if l.IsSet(record.LimitMaxAffectedRows) {
		v := LimitVerdict{Kind: "max_affected_rows", Limit: l.By[record.LimitMaxAffectedRows], Verdict: "not a write"}
		switch b := statement.BoundWrite(st, db); {
		case b.Refuse != "":
			v.Refused, v.Verdict = true, "refused: "+b.Refuse
		case b.Write:
			v.Verdict = fmt.Sprintf("bounded: run in a transaction or savepoint, rolled back past %d rows (tables with an engine that cannot roll back are refused by the proxy)", l.MaxAffectedRows)
		case b.Execute != "":
			v.Verdict = "judged at EXECUTE by the text " + b.Execute + " was prepared from"
		}
		out = append(out, v)
	}
	return out
}
