package record

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// Event names. Users script against these strings (README, "Audit records").
const (
	EventSessionStart  = "session.start"
	EventSessionDenied = "session.denied"
	EventSessionEnd    = "session.end"
	EventStatement     = "statement"
	EventOutcome       = "outcome"
	EventCheckpoint    = "checkpoint"
	// EventApproval records a change of an approval request that no
	// statement's outcome carries: a decision, an expiry, a retry-mode
	// approval used or left unused.
	EventApproval = "approval"
)

// Approval modes: a policy rule's approval_mode, the approval broker's
// behaviour and ApprovalInfo.Mode.
const (
	// ApprovalModeHold keeps the client waiting until a human decides.
	ApprovalModeHold = "hold"
	// ApprovalModeRetry refuses at once with the request's id; the identical
	// statement, re-sent by the same identity once approved, runs once.
	ApprovalModeRetry = "retry"
)

// Outcome statuses.
const (
	StatusSuccess = "success"
	StatusError   = "error"
	StatusBlocked = "blocked"
)

// Record is one line of the journal. Common fields first; the rest are set
// per event and omitted when empty, so a line carries only what its event has.
//
// Seq is the journal-wide sequence number (strictly increasing across all
// sessions), which together with PrevHash/Hash lets `audit verify` detect
// deletions, reordering and truncation.
type Record struct {
	TS        time.Time `json:"ts"`
	Event     string    `json:"event"`
	SessionID string    `json:"session_id,omitempty"`
	Seq       uint64    `json:"seq"`
	Node      string    `json:"node,omitempty"`

	// session.start / session.denied
	Identity    *Identity    `json:"identity,omitempty"`
	Workload    *Workload    `json:"workload,omitempty"`
	Client      *Client      `json:"client,omitempty"`
	Destination string       `json:"destination,omitempty"`
	Backend     *BackendInfo `json:"backend,omitempty"`
	Reason      string       `json:"reason,omitempty"` // session.denied, session.end

	// statement / outcome
	StatementID uint64 `json:"statement_id,omitempty"`
	Command     string `json:"command,omitempty"` // COM_QUERY, COM_STMT_EXECUTE, ...
	SQL         string `json:"sql,omitempty"`
	// SQLBase64 holds the statement's exact bytes (standard base64) when
	// they are not valid UTF-8 (a latin1 session's é): SQL then shows them
	// with U+FFFD, as JSON must. Readers that run or compare the statement
	// use Text.
	SQLBase64   string          `json:"sql_base64,omitempty"`
	Digest      string          `json:"digest,omitempty"`
	DB          string          `json:"db,omitempty"`
	Params      []Param         `json:"params,omitempty"`
	Statement   *Classification `json:"classification,omitempty"`
	Attribution *Attribution    `json:"attribution,omitempty"`

	// outcome
	Status       string     `json:"status,omitempty"`
	Rows         *uint64    `json:"rows,omitempty"`
	AffectedRows *uint64    `json:"affected_rows,omitempty"`
	Error        *ErrorInfo `json:"error,omitempty"`
	DurationUS   *int64     `json:"duration_us,omitempty"`
	Columns      []string   `json:"columns,omitempty"`
	Masked       []Masked   `json:"masked,omitempty"`
	Policy       *Decision  `json:"policy,omitempty"`
	// Limit is the per-identity limit that fired on this statement.
	Limit *LimitHit `json:"limit,omitempty"`
	// Truncated marks a result cut short by a limit in truncate mode.
	Truncated bool    `json:"truncated,omitempty"`
	Results   [][]any `json:"results,omitempty"` // optional retention, masked values only
	// ResultDigest is RowDigest over every row the client received (text
	// form), so replay can detect a changed row without retaining results.
	ResultDigest string `json:"result_digest,omitempty"`

	// session.end
	Statements *uint64 `json:"statements,omitempty"`

	// approval
	Approval *ApprovalInfo `json:"approval,omitempty"`

	// checkpoint (written by the journal itself)
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`

	// Integrity chain, filled in by the journal on append.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Identity is the verified workload identity bound to a session.
type Identity struct {
	Name    string         `json:"name"`
	Source  string         `json:"source"` // oidc | static
	Subject string         `json:"subject,omitempty"`
	Issuer  string         `json:"issuer,omitempty"`
	Groups  []string       `json:"groups,omitempty"`
	Claims  map[string]any `json:"claims,omitempty"`
	Pod     *Pod           `json:"pod,omitempty"`
}

// Pod names the Kubernetes pod a workload runs in.
type Pod struct {
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name,omitempty"`
	UID       string            `json:"uid,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Workload is who connected, as the kernel saw it (from the redirect origin).
type Workload struct {
	PID      uint32  `json:"pid,omitempty"`
	UID      *uint32 `json:"uid,omitempty"`
	Exe      string  `json:"exe,omitempty"`
	Cgroup   string  `json:"cgroup,omitempty"`
	CgroupID uint64  `json:"cgroup_id,omitempty"`
	Netns    uint64  `json:"netns,omitempty"`
}

// Client is what the client said about itself: its address, the user name it
// typed (never its password) and its connection attributes.
type Client struct {
	Addr  string            `json:"addr"`
	User  string            `json:"user,omitempty"`
	TLS   bool              `json:"tls,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// BackendInfo is the database the session talks to and as whom.
type BackendInfo struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
	User    string `json:"user"`
}

// Param is one bound parameter of a prepared statement execution.
type Param struct {
	Type      string `json:"type"`
	Value     any    `json:"value"`
	Truncated bool   `json:"truncated,omitempty"`
	Size      int    `json:"size,omitempty"`   // original size in bytes when truncated
	SHA256    string `json:"sha256,omitempty"` // of the whole value (hex) when truncated
}

// Classification is what the SQL parser found in a statement.
type Classification struct {
	Kind        string   `json:"kind"`
	Kinds       []string `json:"kinds,omitempty"` // per statement of a multi-statement
	TablesRead  []string `json:"tables_read,omitempty"`
	TablesWrite []string `json:"tables_written,omitempty"`
	Statements  int      `json:"statements,omitempty"`
}

// Attribution ties a statement to a model and a tool call, each value tagged
// with where it came from (claim, pod, comment).
type Attribution struct {
	Model    *Attributed `json:"model,omitempty"`
	ToolCall *Attributed `json:"tool_call,omitempty"`
	TraceID  *Attributed `json:"trace_id,omitempty"`
}

// Attributed is a value and the source it was taken from.
type Attributed struct {
	Value  string `json:"value"`
	Source string `json:"source"` // claim | pod | comment
}

// ErrorInfo is a MySQL error as the client received it.
type ErrorInfo struct {
	Code    uint16 `json:"code"`
	State   string `json:"state,omitempty"`
	Message string `json:"message"`
}

// Masked says which result column was masked, by which rule, how many values.
type Masked struct {
	Column string `json:"column"`
	Rule   string `json:"rule"`
	Count  uint64 `json:"count"`
}

// Action is what a verdict does with a statement: the word a policy file's
// rule names, the policy and the proxy act on (pkg/statement's Verdict) and
// the journal records.
type Action string

// The actions a policy rule, its default or the proxy's own checks take.
const (
	ActionAllow   Action = "allow"
	ActionDeny    Action = "deny"
	ActionApprove Action = "approve" // a human decides (hold or retry)
)

// Valid reports whether a is one of the actions above.
func (a Action) Valid() bool { return a == ActionAllow || a == ActionDeny || a == ActionApprove }

// Decision is the policy's verdict on a statement.
type Decision struct {
	Rule     string `json:"rule,omitempty"`
	Action   Action `json:"action"`
	Message  string `json:"message,omitempty"`
	Approver string `json:"approver,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// ApprovalID names the approval request a held or retried statement
	// belongs to.
	ApprovalID string `json:"approval_id,omitempty"`
}

// ApprovalInfo is one approval request's new state (event "approval").
type ApprovalInfo struct {
	ID       string `json:"id"`
	Status   string `json:"status"` // approved | denied | timeout | withdrawn | used | expired
	Mode     string `json:"mode"`   // hold | retry
	Identity string `json:"identity,omitempty"`
	Rule     string `json:"rule,omitempty"`
	SQL      string `json:"sql,omitempty"`
	DB       string `json:"db,omitempty"`
	// Node is the node whose client asked (it may differ from the node that
	// writes the record: any node of a fleet decides and expires).
	Node     string `json:"node,omitempty"`
	Approver string `json:"approver,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// UsedBy is the session that ran a retry-mode approval.
	UsedBy string `json:"used_by,omitempty"`
}

// LimitHit names the per-identity limit that refused, stopped or truncated a
// statement: the limits entry, the limit's key and its value (a number for
// counts and sizes, a duration string for statement_timeout, a bool for
// read_only).
type LimitHit struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Value any    `json:"value"`
}

// Checkpoint is a signed statement over the chain head.
type Checkpoint struct {
	Head      string `json:"head"`
	Records   uint64 `json:"records"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
	// Final marks the checkpoint written by a clean Close: nothing follows.
	Final bool `json:"final,omitempty"`
	// IntervalMS is the journal's checkpoint interval, so verify can tell a
	// stale (possibly truncated) tail from a quiet one.
	IntervalMS int64 `json:"interval_ms,omitempty"`
}

// SetSQL records a statement's text: as is, and byte-exact in SQLBase64
// when it is not valid UTF-8.
func (r *Record) SetSQL(sql string) {
	r.SQL = sql
	if !utf8.ValidString(sql) {
		r.SQLBase64 = base64.StdEncoding.EncodeToString([]byte(sql))
	}
}

// Text is the statement's exact text: SQLBase64 decoded when present (and
// valid), SQL otherwise.
func (r *Record) Text() string {
	if r.SQLBase64 != "" {
		if b, err := base64.StdEncoding.DecodeString(r.SQLBase64); err == nil {
			return string(b)
		}
	}
	return r.SQL
}

// U64 and I64 return pointers for the optional numeric fields.
func U64(v uint64) *uint64 { return &v }
func I64(v int64) *int64   { return &v }
