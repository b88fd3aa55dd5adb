package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

func init() { subcommands = append(subcommands, newPolicyCmd, newApprovalsCmd) }

// Exit statuses of `policy test`.
const (
	exitAllow   = 0
	exitDeny    = 1
	exitApprove = 2
	exitInvalid = 3 // the policy file or the arguments are invalid
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check policy files and see how they decide",
	}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyCheckCmd(), newPolicyDefaultCmd())
	return cmd
}

func newPolicyDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print the built-in policy (what runs when no policy file is configured), to start a file from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), policy.DefaultPolicy)
			return err
		},
	}
}

type policyTestOpts struct {
	file     string
	identity string
	groups   []string
	db       string
	user     string
	command  string
	json     bool
	server   string
	sqlMode  string
}

func newPolicyTestCmd() *cobra.Command {
	var o policyTestOpts
	cmd := &cobra.Command{
		Use:   "test [--policy FILE] [--identity NAME] [SQL]",
		Short: "Classify a statement and show which rule decides it, and an identity's limits",
		Long: `Classify SQL with the same parser the proxy uses, run it through the policy
(the built-in default when --policy is not given) and print the classification,
the matching rule and the action. With --identity, also print the limits in
force for that identity and which limits entry set each. Without SQL, print
only the limits (--identity is then required).

Exit status: 0 allow, 1 deny, 2 approve (held for a human), 3 invalid policy or arguments.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sql := ""
			if len(args) == 1 {
				sql = args[0]
			} else if o.identity == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden: policy test needs SQL, --identity, or both")
				return exitCode(exitInvalid)
			}
			code, err := runPolicyTest(cmd.OutOrStdout(), o, sql)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden:", err)
			}
			if code != exitAllow {
				return exitCode(code)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.file, "policy", "", "policy file (default: the built-in policy)")
	f.StringVar(&o.identity, "identity", "", "identity name the statement comes from")
	f.StringSliceVar(&o.groups, "group", nil, "identity groups (repeatable)")
	f.StringVar(&o.db, "db", "", "current database, to qualify table names")
	f.StringVar(&o.user, "user", "", "the user name the client typed (session.user)")
	f.StringVar(&o.command, "command", "COM_QUERY", "protocol command (session.command)")
	f.BoolVar(&o.json, "json", false, "print JSON")
	f.StringVar(&o.server, "server-version", "10.11.0-MariaDB", "the server's version string, as its handshake gives it (decides executable comments)")
	f.StringVar(&o.sqlMode, "sql-mode", "", "the session's sql_mode (ANSI_QUOTES, NO_BACKSLASH_ESCAPES, ... change how the text reads)")
	return cmd
}

// limitRow is one limit in force, as `policy test` shows it.
type limitRow struct {
	Kind     string `json:"kind"`
	Value    any    `json:"value"`
	Limit    string `json:"limit"` // the entry that set it
	OnExceed string `json:"on_exceed,omitempty"`
}

func limitRows(l policy.EffectiveLimits) []limitRow {
	rows := []limitRow{}
	for k := policy.LimitKind(0); k < policy.NumLimitKinds; k++ {
		if !l.IsSet(k) {
			continue
		}
		r := limitRow{Kind: k.String(), Value: l.Value(k), Limit: l.By[k]}
		switch k {
		case policy.LimitMaxRows:
			r.OnExceed = onExceed(l.TruncateRows)
		case policy.LimitMaxResultBytes:
			r.OnExceed = onExceed(l.TruncateBytes)
		}
		rows = append(rows, r)
	}
	return rows
}

func onExceed(truncate bool) string {
	if truncate {
		return policy.OnExceedTruncate
	}
	return policy.OnExceedError
}

func printLimits(w io.Writer, identity string, rows []limitRow) {
	if len(rows) == 0 {
		fmt.Fprintf(w, "limits:          none for identity %q\n", identity)
		return
	}
	fmt.Fprintf(w, "limits:          for identity %q\n", identity)
	for _, r := range rows {
		v := fmt.Sprint(r.Value)
		if r.Kind == policy.LimitMaxResultBytes.String() {
			v = fmt.Sprintf("%v (%s)", r.Value, policy.ByteSize(r.Value.(uint64)))
		}
		if r.OnExceed != "" {
			v += ", on_exceed " + r.OnExceed
		}
		fmt.Fprintf(w, "  %-26s %s  [%s]\n", r.Kind+":", v, r.Limit)
	}
}

// runPolicyTest prints the verdict (and, with an identity, its limits) and
// returns the exit status. An empty sql prints only the limits.
func runPolicyTest(w io.Writer, o policyTestOpts, sql string) (int, error) {
	e, err := policy.Load(o.file)
	if err != nil {
		return exitInvalid, err
	}
	var limits []limitRow
	if o.identity != "" {
		limits = limitRows(e.LimitsFor(o.identity))
	}
	if sql == "" {
		if o.json {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return exitAllow, enc.Encode(struct {
				Identity string     `json:"identity"`
				Limits   []limitRow `json:"limits"`
			}{o.identity, limits})
		}
		printLimits(w, o.identity, limits)
		return exitAllow, nil
	}
	dialect := sqltext.Dialect{Server: sqltext.ParseServerVersion(o.server)}
	if dialect.Mode, err = sqltext.ParseSQLMode(o.sqlMode); err != nil {
		return exitInvalid, err
	}
	st := statement.ClassifyAs(sql, o.db, dialect)
	var id *record.Identity
	if o.identity != "" || len(o.groups) > 0 {
		id = &record.Identity{Name: o.identity, Source: "static", Groups: o.groups}
	}
	d := e.Decide(id, st, statement.Session{ID: "policy-test", DB: o.db, User: o.user, Command: o.command})
	if st.Refused != "" {
		d = statement.Verdict{Rule: "sql-text", Action: record.ActionDeny, Message: st.Refused}
	}
	code := exitAllow
	switch d.Action {
	case record.ActionDeny:
		code = exitDeny
	case record.ActionApprove:
		code = exitApprove
	}
	var verdicts []limitVerdict
	if o.identity != "" && st.Refused == "" {
		verdicts = limitVerdicts(e.LimitsFor(o.identity), sql, st, o.db)
		for _, v := range verdicts {
			if v.Refused {
				code = exitDeny // the proxy refuses it before policy
			}
		}
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		st.Nodes = nil
		return code, enc.Encode(struct {
			Statement *statement.Statement `json:"classification"`
			Decision  statement.Verdict    `json:"decision"`
			Limits    []limitRow           `json:"limits,omitempty"`
			Verdicts  []limitVerdict       `json:"limit_verdicts,omitempty"`
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
	fmt.Fprintf(w, "functions:       %s\n", list(st.Functions))
	fmt.Fprintf(w, "digest:          %s\n", st.Digest)
	fmt.Fprintf(w, "rule:            %s\n", d.Rule)
	fmt.Fprintf(w, "action:          %s\n", d.Action)
	if d.Action == record.ActionApprove {
		// hold: the client waits for the decision; retry: refused at once
		// with a request id, the identical statement runs once approved.
		if d.ApprovalMode != "" {
			fmt.Fprintf(w, "approval mode:   %s (rule %s)\n", d.ApprovalMode, d.Rule)
		} else {
			fmt.Fprintf(w, "approval mode:   policy.approvals.mode of the daemon (hold unless set)\n")
		}
	}
	if d.Message != "" {
		fmt.Fprintf(w, "message:         %s\n", d.Message)
	}
	for _, v := range verdicts {
		fmt.Fprintf(w, "%-16s %s  [%s]\n", v.Kind+":", v.Verdict, v.Limit)
	}
	if o.identity != "" {
		printLimits(w, o.identity, limits)
	}
	return code, nil
}

// limitVerdict is how a statement-judging limit treats the statement.
type limitVerdict struct {
	Kind    string `json:"kind"`
	Limit   string `json:"limit"`
	Refused bool   `json:"refused"`
	Verdict string `json:"verdict"`
}

// limitVerdicts judges a statement as the proxy's read_only and
// max_affected_rows limits would, as far as that can be done without the
// server (views and storage engines are looked up there).
func limitVerdicts(l policy.EffectiveLimits, sql string, st *statement.Statement, db string) []limitVerdict {
	var out []limitVerdict
	if l.ReadOnly {
		v := limitVerdict{Kind: "read_only", Limit: l.By[policy.LimitReadOnly], Verdict: "admitted (views it reads are judged against the server)"}
		if why, _ := statement.ReadOnly(sql, st, db, nil); why != "" {
			v.Refused, v.Verdict = true, "refused: "+why
		}
		out = append(out, v)
	}
	if l.IsSet(policy.LimitMaxAffectedRows) {
		v := limitVerdict{Kind: "max_affected_rows", Limit: l.By[policy.LimitMaxAffectedRows], Verdict: "not a write"}
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

func newPolicyCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check that a policy file is valid (exit 3 if not)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := policy.Load(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden:", err)
				return exitCode(exitInvalid)
			}
			p := e.Policy()
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d rules, default %s, %d masking rules, %d limits)\n", args[0], len(p.Rules), p.Default, len(p.Masking), len(p.Limits))
			return nil
		},
	}
}
