package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// File is the policy file as written: ordered rules, a default action, the
// masking section (interpreted by pkg/masking) and per-identity limits.
type File struct {
	Default record.Action `yaml:"default"`
	Rules   []Rule        `yaml:"rules"`
	Masking []MaskRule    `yaml:"masking"`
	Limits  []Limit       `yaml:"limits"`
}

// Rule is one ordered policy rule. The first rule whose Match is true (and
// whose Identities, when set, include the connection's identity) decides.
type Rule struct {
	Name string `yaml:"name"`
	// Match is a CEL expression over identity, statement and session; empty
	// matches everything.
	Match string `yaml:"match"`
	// Identities, when set, limits the rule to these identity names
	// (path.Match patterns, "*" for any); shorthand for an identity.name test.
	Identities []string      `yaml:"identities,omitempty"`
	Action     record.Action `yaml:"action"`
	Message    string        `yaml:"message,omitempty"`
	// OnError says what a rule whose Match fails to evaluate does: "deny"
	// (the default: the rule matches and denies) or "skip" (the rule does not
	// match).
	OnError string `yaml:"on_error,omitempty"`
	// ApprovalMode overrides policy.approvals.mode for an approve rule:
	// hold (the client waits) or retry (refused at once; the identical
	// statement re-sent once approved runs once).
	ApprovalMode string `yaml:"approval_mode,omitempty"`
}

// MaskRule is one entry of the masking section. pkg/policy only parses and
// checks its shape; pkg/masking gives it meaning. Keys this struct does not
// name are kept in Extra.
type MaskRule struct {
	Name           string         `yaml:"name" json:"name"`
	Columns        []string       `yaml:"columns,omitempty" json:"columns,omitempty"`                 // db.table.column, * allowed
	ColumnPatterns []string       `yaml:"column_patterns,omitempty" json:"column_patterns,omitempty"` // regular expressions over column names
	Detectors      []string       `yaml:"detectors,omitempty" json:"detectors,omitempty"`             // value detectors (email, card, ...)
	Strategy       string         `yaml:"strategy" json:"strategy"`                                   // redact | partial | hash | null
	Keep           int            `yaml:"keep,omitempty" json:"keep,omitempty"`
	Identities     []string       `yaml:"identities,omitempty" json:"identities,omitempty"`
	Extra          map[string]any `yaml:",inline" json:"extra,omitempty"`
}

// DefaultPolicy is the built-in policy used when no file is configured.
const DefaultPolicy = `# sqlwarden built-in policy
default: allow
rules:
  - name: unparsed
    match: '!statement.parsed'
    action: deny
    message: the statement could not be parsed, so policy cannot judge it
  - name: dynamic-sql
    match: statement.dynamic_sql
    action: deny
    message: PREPARE from a variable hides the statement from policy
  - name: no-account-management
    match: statement.account_management
    action: deny
    message: users, roles, grants and passwords are managed outside sqlwarden
  - name: no-global-settings
    match: statement.sets_global
    action: deny
    message: server-wide settings (SET GLOBAL) are not allowed
  - name: no-server-admin
    match: statement.kinds.exists(k, k in ["SHUTDOWN", "RESTART", "BINLOG"])
    action: deny
    message: stopping the server or replaying its binary log is not allowed
  - name: no-file-io
    match: statement.file_io
    action: deny
    message: the database server's files are off limits (INTO OUTFILE/DUMPFILE, LOAD_FILE, LOAD DATA INFILE)
  - name: no-drop-or-truncate
    match: statement.kind in ["DROP_TABLE", "DROP_DATABASE", "TRUNCATE"]
    action: deny
    message: DROP and TRUNCATE are not allowed
  - name: no-unbounded-writes
    match: (statement.kind in ["DELETE", "UPDATE"] || statement.kinds.exists(k, k in ["DELETE", "UPDATE"]) || statement.overwrites) && !statement.has_where
    action: deny
    message: UPDATE, DELETE and REPLACE or INSERT ... ON DUPLICATE KEY UPDATE from a query need a WHERE clause
  - name: routines-need-a-human
    match: statement.routines.size() > 0
    action: approve
    message: stored procedures and functions run code policy cannot see; creating, dropping or calling one needs approval
  - name: ddl-needs-a-human
    match: statement.is_ddl
    action: approve
    message: schema changes need approval
`

// parseFile decodes and checks a policy file; unknown keys are errors.
func parseFile(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if f.Default == "" {
		f.Default = record.ActionAllow
	}
	if !f.Default.Valid() {
		return nil, fmt.Errorf("check policy: default action %q: want allow, deny or approve", f.Default)
	}
	seen := map[string]bool{}
	for i := range f.Rules {
		r := &f.Rules[i]
		if r.Name == "" {
			return nil, fmt.Errorf("check rule %d: name is required", i+1)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("check rule %q: duplicate name", r.Name)
		}
		seen[r.Name] = true
		r.Action = record.Action(strings.ToLower(string(r.Action)))
		if !r.Action.Valid() {
			return nil, fmt.Errorf("check rule %q: action %q: want allow, deny or approve", r.Name, r.Action)
		}
		switch r.OnError {
		case "":
			r.OnError = "deny"
		case "deny", "skip":
		default:
			return nil, fmt.Errorf("check rule %q: on_error %q: want deny or skip", r.Name, r.OnError)
		}
		switch r.ApprovalMode {
		case "":
		case record.ApprovalModeHold, record.ApprovalModeRetry:
			if r.Action != record.ActionApprove {
				return nil, fmt.Errorf("check rule %q: approval_mode needs action approve", r.Name)
			}
		default:
			return nil, fmt.Errorf("check rule %q: approval_mode %q: want hold or retry", r.Name, r.ApprovalMode)
		}
		for _, p := range r.Identities {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("check rule %q: identity pattern %q: %w", r.Name, p, err)
			}
		}
	}
	seen = map[string]bool{}
	for i := range f.Masking {
		m := &f.Masking[i]
		if m.Name == "" {
			return nil, fmt.Errorf("check masking rule %d: name is required", i+1)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("check masking rule %q: duplicate name", m.Name)
		}
		seen[m.Name] = true
		if m.Strategy == "" {
			return nil, fmt.Errorf("check masking rule %q: strategy is required", m.Name)
		}
		if len(m.Columns) == 0 && len(m.ColumnPatterns) == 0 && len(m.Detectors) == 0 {
			return nil, fmt.Errorf("check masking rule %q: columns, column_patterns or detectors is required", m.Name)
		}
		if m.Keep < 0 {
			return nil, fmt.Errorf("check masking rule %q: keep must not be negative", m.Name)
		}
	}
	if err := checkLimits(f.Limits); err != nil {
		return nil, err
	}
	return &f, nil
}
