package record

import (
	"strconv"
	"time"
)

// LimitKind names one per-identity limit. Its String form is the policy
// file key, used in errors, audit records and metrics.
type LimitKind uint8

// The limits, in the order Limits.By is indexed.
const (
	LimitMaxRows LimitKind = iota
	LimitMaxResultBytes
	LimitStatementTimeout
	LimitMaxStatementsPerSecond
	LimitMaxConcurrentStatements
	LimitMaxConnections
	LimitReadOnly
	LimitMaxAffectedRows
	NumLimitKinds
)

var limitKindNames = [NumLimitKinds]string{
	"max_rows", "max_result_bytes", "statement_timeout", "max_statements_per_second",
	"max_concurrent_statements", "max_connections", "read_only", "max_affected_rows",
}

func (k LimitKind) String() string {
	if k < NumLimitKinds {
		return limitKindNames[k]
	}
	return "limit_" + strconv.Itoa(int(k))
}

// Limits are the per-identity limits in force for one identity: the
// tightest value of each limit over every entry of the policy's limits
// section that matches it. pkg/policy resolves them, the proxy enforces
// them. A limit is set when By names the entry it came from; unset limits
// are zero.
type Limits struct {
	MaxRows        uint64
	MaxResultBytes uint64
	// TruncateRows and TruncateBytes are the on_exceed of the entry that set
	// MaxRows and MaxResultBytes: true for "truncate", false for "error".
	TruncateRows            bool
	TruncateBytes           bool
	StatementTimeout        time.Duration
	MaxStatementsPerSecond  int
	MaxConcurrentStatements int
	MaxConnections          int
	ReadOnly                bool
	MaxAffectedRows         uint64
	// By is the name of the limits entry that set each limit ("" = unset).
	By [NumLimitKinds]string
}

// IsSet reports whether limit k applies.
func (l *Limits) IsSet(k LimitKind) bool { return k < NumLimitKinds && l.By[k] != "" }

// Any reports whether any limit applies.
func (l *Limits) Any() bool {
	for _, b := range l.By {
		if b != "" {
			return true
		}
	}
	return false
}

// Value is limit k's value as audit records carry it: a number for counts
// and sizes, a Go duration string for the timeout, a bool for read_only;
// nil when unset.
func (l *Limits) Value(k LimitKind) any {
	if !l.IsSet(k) {
		return nil
	}
	switch k {
	case LimitMaxRows:
		return l.MaxRows
	case LimitMaxResultBytes:
		return l.MaxResultBytes
	case LimitStatementTimeout:
		return l.StatementTimeout.String()
	case LimitMaxStatementsPerSecond:
		return l.MaxStatementsPerSecond
	case LimitMaxConcurrentStatements:
		return l.MaxConcurrentStatements
	case LimitMaxConnections:
		return l.MaxConnections
	case LimitReadOnly:
		return l.ReadOnly
	case LimitMaxAffectedRows:
		return l.MaxAffectedRows
	}
	return nil
}

// Hit describes limit k firing, for the outcome record.
func (l *Limits) Hit(k LimitKind) *LimitHit {
	return &LimitHit{Name: l.By[k], Kind: k.String(), Value: l.Value(k)}
}
