package metrics

import (
	"strings"
	"sync"
)

// Label values come from fixed sets or, for names taken from configuration
// (policy rules, sinks), from a capped set, so a scrape never grows without
// bound: no SQL text, user names or pids ever become label values.

// Other is the label value for anything outside a label's known set.
const Other = "OTHER"

// statementKindList are the statement kinds exported as they are; any other
// kind is counted as OTHER (the last). Kinds are pkg/statement's
// classification (SELECT, CREATE_TABLE, ...) or, for commands without SQL,
// the command name.
var statementKindList = []string{
	"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD_DATA",
	"SET", "SHOW", "USE", "EXPLAIN", "CALL", "DO",
	"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE_SAVEPOINT",
	"PREPARE", "EXECUTE", "DEALLOCATE",
	"CREATE_TABLE", "ALTER_TABLE", "DROP_TABLE", "RENAME_TABLE", "TRUNCATE",
	"CREATE_INDEX", "DROP_INDEX", "CREATE_VIEW", "DROP_VIEW",
	"CREATE_DATABASE", "ALTER_DATABASE", "DROP_DATABASE",
	"CREATE_USER", "ALTER_USER", "DROP_USER", "GRANT", "REVOKE", "SET_PASSWORD",
	"KILL", "FLUSH", "LOCK_TABLES", "UNLOCK_TABLES", "ANALYZE_TABLE",
	"UNPARSED",
	"COM_INIT_DB", "COM_PING", "COM_FIELD_LIST", "COM_STATISTICS", "COM_PROCESS_KILL",
	"COM_CHANGE_USER", "COM_RESET_CONNECTION", "COM_SET_OPTION", "COM_QUIT",
	"COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_STMT_FETCH", "COM_STMT_CLOSE",
	"COM_STMT_RESET", "COM_STMT_SEND_LONG_DATA",
	Other,
}

// statementKinds indexes statementKindList.
var statementKinds = index(statementKindList)

// statusLabels are the outcome statuses of the audit contract, then the
// label of any other (see statusIndex).
var statusLabels = [...]string{"success", "error", "blocked", "other"}

// connOutcomes are how a proxied connection ends.
var connOutcomes = set("closed", "denied", "handshake_error", "login_limit", "backend_error", "backend_closed", "audit_error", "panic")

// limitKinds are the keys of a policy limits entry that can fire.
var limitKinds = set("max_rows", "max_result_bytes", "statement_timeout", "max_statements_per_second",
	"max_concurrent_statements", "max_connections", "read_only", "max_affected_rows")

// actionLabels are the policy decisions, then the label of any other (see
// actionIndex).
var actionLabels = [...]string{"allow", "deny", "approve", "mask", "other"}

// identityReasons maps refusal reasons (pkg/identity's Reason constants and
// the daemon's explicit-client refusals, matched by prefix) to label values.
// Reasons carrying client input (a user name) are matched by their fixed
// prefix, so that input never becomes a label.
var identityReasons = []struct{ prefix, label string }{
	{"token expired", "token_expired"},
	{"token not yet valid", "token_not_yet_valid"},
	{"token has no expiry", "token_no_expiry"},
	{"wrong audience", "wrong_audience"},
	{"wrong issuer", "wrong_issuer"},
	{"signature invalid", "signature_invalid"},
	{"unknown signing key", "unknown_key"},
	{"issuer keys unavailable", "keys_unavailable"},
	{"token malformed", "token_malformed"},
	{"token invalid", "token_invalid"},
	{"token belongs to another pod", "other_pod"},
	{"token names no pod", "no_pod_claim"},
	{"token file missing", "token_missing"},
	{"token file unreadable", "token_unreadable"},
	{"token has no name claim", "token_no_name"},
	{"token as password needs tls", "token_needs_tls"},
	{"a token presented as password requires tls", "token_needs_tls"},
	{"unsupported algorithm", "unsupported_algorithm"},
	{"process gone", "process_gone"},
	{"no workload process", "no_process"},
	{"workload changed cgroup", "cgroup_changed"},
	{"no identity configured", "no_identity"},
	{"no identity source", "no_identity"},
	{"password for explicit client", "password_mismatch"},
	{"connection was not redirected and no explicit client", "unknown_client"},
	{"client credential unavailable", "credential_unavailable"},
	{"tls is required", "tls_required"},
}

// IdentityReason maps a refusal reason to its bounded label value:
// "token expired" → token_expired; anything unknown → other.
func IdentityReason(reason string) string {
	r := strings.ToLower(strings.TrimSpace(reason))
	for _, ir := range identityReasons {
		if strings.HasPrefix(r, ir.prefix) {
			return ir.label
		}
	}
	return "other"
}

// StatementKind maps a statement kind to its bounded label value.
func StatementKind(kind string) string {
	k := strings.ToUpper(kind)
	if _, ok := statementKinds[k]; ok {
		return k
	}
	return Other
}

// kindIndex is StatementKind as an index into statementKindList.
func kindIndex(kind string) int {
	if i, ok := statementKinds[kind]; ok {
		return i
	}
	return statementKinds[StatementKind(kind)]
}

func statusIndex(status string) int {
	switch status {
	case "success":
		return 0
	case "error":
		return 1
	case "blocked":
		return 2
	}
	return len(statusLabels) - 1
}

func actionIndex(action string) int {
	switch action {
	case "allow":
		return 0
	case "deny":
		return 1
	case "approve":
		return 2
	case "mask":
		return 3
	}
	return len(actionLabels) - 1
}

func index(vals []string) map[string]int {
	m := make(map[string]int, len(vals))
	for i, v := range vals {
		m[v] = i
	}
	return m
}

func set(vals ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		m[v] = struct{}{}
	}
	return m
}

func known(m map[string]struct{}, v, other string) string {
	if _, ok := m[v]; ok {
		return v
	}
	return other
}

// capped admits at most max distinct values, each at most maxLen bytes of
// printable ASCII; later newcomers become Other. It bounds label values that
// come from configuration but may change on reload (policy rule names).
type capped struct {
	mu   sync.RWMutex
	seen map[string]struct{}
	max  int
}

const maxLabelLen = 64

func newCapped(max int) *capped { return &capped{seen: map[string]struct{}{}, max: max} }

func (c *capped) value(v string) string {
	c.mu.RLock()
	_, ok := c.seen[v]
	c.mu.RUnlock()
	if ok {
		return v
	}
	if v == "" || len(v) > maxLabelLen || !printable(v) {
		return Other
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return Other
	}
	c.seen[v] = struct{}{}
	return v
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
