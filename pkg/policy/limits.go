package policy

import (
	"fmt"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limit is one entry of the limits section: bounds on what an identity's
// sessions may do. Every entry whose Identities match an identity applies to
// it; for each limit the tightest value among them wins (see LimitsFor).
// A nil field leaves that limit unset.
type Limit struct {
	Name string `yaml:"name" json:"name"`
	// Identities are path.Match patterns over the identity name; empty
	// means every identity.
	Identities []string `yaml:"identities,omitempty" json:"identities,omitempty"`
	// MaxRows caps the result rows of one statement (all its result sets).
	MaxRows *uint64 `yaml:"max_rows,omitempty" json:"max_rows,omitempty"`
	// MaxResultBytes caps the row payload of one statement's result.
	MaxResultBytes *ByteSize `yaml:"max_result_bytes,omitempty" json:"max_result_bytes,omitempty"`
	// OnExceed says what happens past MaxRows or MaxResultBytes: "error"
	// (the default) or "truncate".
	OnExceed         string    `yaml:"on_exceed,omitempty" json:"on_exceed,omitempty"`
	StatementTimeout *Duration `yaml:"statement_timeout,omitempty" json:"statement_timeout,omitempty"`
	// MaxStatementsPerSecond is a token bucket per identity per node with
	// a burst of the same size.
	MaxStatementsPerSecond  *int `yaml:"max_statements_per_second,omitempty" json:"max_statements_per_second,omitempty"`
	MaxConcurrentStatements *int `yaml:"max_concurrent_statements,omitempty" json:"max_concurrent_statements,omitempty"`
	MaxConnections          *int `yaml:"max_connections,omitempty" json:"max_connections,omitempty"`
	ReadOnly                bool `yaml:"read_only,omitempty" json:"read_only,omitempty"`
	// MaxAffectedRows caps the rows one statement may change (0: none).
	MaxAffectedRows *uint64 `yaml:"max_affected_rows,omitempty" json:"max_affected_rows,omitempty"`
}

// On-exceed modes of max_rows and max_result_bytes.
const (
	OnExceedError    = "error"
	OnExceedTruncate = "truncate"
)

// LimitsFor resolves the limits of the current policy for an identity.
// It walks every entry: call it once per session and again when Version
// changes, not per statement.
func (e *Engine) LimitsFor(identity string) record.Limits {
	return resolveLimits(e.cur.Load().file.Limits, identity)
}

func resolveLimits(entries []Limit, identity string) record.Limits {
	var l record.Limits
	for i := range entries {
		en := &entries[i]
		if len(en.Identities) > 0 && !matchName(en.Identities, identity) {
			continue
		}
		truncate := en.OnExceed == OnExceedTruncate
		if en.MaxRows != nil {
			v := *en.MaxRows
			// At equal caps, error is tighter than truncate.
			if !l.IsSet(record.LimitMaxRows) || v < l.MaxRows || (v == l.MaxRows && l.TruncateRows && !truncate) {
				l.MaxRows, l.TruncateRows, l.By[record.LimitMaxRows] = v, truncate, en.Name
			}
		}
		if en.MaxResultBytes != nil {
			v := uint64(*en.MaxResultBytes)
			if !l.IsSet(record.LimitMaxResultBytes) || v < l.MaxResultBytes || (v == l.MaxResultBytes && l.TruncateBytes && !truncate) {
				l.MaxResultBytes, l.TruncateBytes, l.By[record.LimitMaxResultBytes] = v, truncate, en.Name
			}
		}
		if en.StatementTimeout != nil {
			if v := time.Duration(*en.StatementTimeout); !l.IsSet(record.LimitStatementTimeout) || v < l.StatementTimeout {
				l.StatementTimeout, l.By[record.LimitStatementTimeout] = v, en.Name
			}
		}
		minInt(&l, record.LimitMaxStatementsPerSecond, &l.MaxStatementsPerSecond, en.MaxStatementsPerSecond, en.Name)
		minInt(&l, record.LimitMaxConcurrentStatements, &l.MaxConcurrentStatements, en.MaxConcurrentStatements, en.Name)
		minInt(&l, record.LimitMaxConnections, &l.MaxConnections, en.MaxConnections, en.Name)
		if en.ReadOnly && !l.ReadOnly {
			l.ReadOnly, l.By[record.LimitReadOnly] = true, en.Name
		}
		if en.MaxAffectedRows != nil {
			if v := *en.MaxAffectedRows; !l.IsSet(record.LimitMaxAffectedRows) || v < l.MaxAffectedRows {
				l.MaxAffectedRows, l.By[record.LimitMaxAffectedRows] = v, en.Name
			}
		}
	}
	return l
}

func minInt(l *record.Limits, k record.LimitKind, dst *int, v *int, name string) {
	if v == nil {
		return
	}
	if !l.IsSet(k) || *v < *dst {
		*dst, l.By[k] = *v, name
	}
}

// checkLimits validates the limits section (after strict decoding).
func checkLimits(ls []Limit) error {
	seen := map[string]bool{}
	for i := range ls {
		l := &ls[i]
		if l.Name == "" {
			return fmt.Errorf("check limit %d: name is required", i+1)
		}
		if seen[l.Name] {
			return fmt.Errorf("check limit %q: duplicate name", l.Name)
		}
		seen[l.Name] = true
		for _, p := range l.Identities {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("check limit %q: identity pattern %q: %w", l.Name, p, err)
			}
		}
		switch l.OnExceed {
		case "":
			l.OnExceed = OnExceedError
		case OnExceedError, OnExceedTruncate:
			if l.MaxRows == nil && l.MaxResultBytes == nil {
				return fmt.Errorf("check limit %q: on_exceed applies to max_rows or max_result_bytes, and neither is set", l.Name)
			}
		default:
			return fmt.Errorf("check limit %q: on_exceed %q: want error or truncate", l.Name, l.OnExceed)
		}
		if l.MaxRows != nil && *l.MaxRows == 0 {
			return fmt.Errorf("check limit %q: max_rows must be at least 1", l.Name)
		}
		if l.MaxResultBytes != nil && *l.MaxResultBytes == 0 {
			return fmt.Errorf("check limit %q: max_result_bytes must be at least 1", l.Name)
		}
		if l.StatementTimeout != nil && *l.StatementTimeout <= 0 {
			return fmt.Errorf("check limit %q: statement_timeout must be positive", l.Name)
		}
		if l.StatementTimeout != nil && time.Duration(*l.StatementTimeout) < time.Millisecond {
			return fmt.Errorf("check limit %q: statement_timeout must be at least 1ms", l.Name)
		}
		for _, f := range []struct {
			key string
			v   *int
		}{{"max_statements_per_second", l.MaxStatementsPerSecond}, {"max_concurrent_statements", l.MaxConcurrentStatements}, {"max_connections", l.MaxConnections}} {
			if f.v != nil && *f.v < 1 {
				return fmt.Errorf("check limit %q: %s must be at least 1", l.Name, f.key)
			}
		}
		if l.MaxRows == nil && l.MaxResultBytes == nil && l.StatementTimeout == nil && l.MaxStatementsPerSecond == nil &&
			l.MaxConcurrentStatements == nil && l.MaxConnections == nil && !l.ReadOnly && l.MaxAffectedRows == nil {
			return fmt.Errorf("check limit %q: sets no limit", l.Name)
		}
	}
	return nil
}

// ByteSize is a size in bytes. In YAML it is a plain integer or a number
// with a unit: B; K, KiB (1024); M, MiB; G, GiB; KB (1000), MB, GB.
type ByteSize uint64

var byteUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseByteSize parses "4MiB", "512KB", "1000" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range byteUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: want an integer with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("parse size %q: too large", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML accepts an integer or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: size: want a scalar", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String formats b with the largest binary unit that divides it.
func (b ByteSize) String() string {
	v := uint64(b)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.mult && v%u.mult == 0 {
			return strconv.FormatUint(v/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10) + "B"
}

// MarshalJSON writes the byte count.
func (b ByteSize) MarshalJSON() ([]byte, error) { return strconv.AppendUint(nil, uint64(b), 10), nil }

// Duration is a time.Duration written as a Go duration string ("5s", "1m30s").
type Duration time.Duration

// UnmarshalYAML accepts a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration: want a scalar", n.Line)
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: duration %q: want a Go duration such as 5s or 1m30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}
