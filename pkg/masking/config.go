package masking

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Strategies a rule can name.
const (
	StrategyRedact  = "redact"  // a type-preserving constant
	StrategyPartial = "partial" // keep the last Keep characters (digits for numbers)
	StrategyHash    = "hash"    // keyed HMAC-SHA256, 32 hex characters
	StrategyNull    = "null"    // NULL
)

// Policy values for Config.Unknown and Config.Probing.
const (
	Deny  = "deny"
	Allow = "allow"
)

// Rule masks the columns it names for the identities it names.
type Rule struct {
	Name           string   `yaml:"name"`
	Columns        []string `yaml:"columns"`         // db.table.column, * wildcards per part
	ColumnPatterns []string `yaml:"column_patterns"` // column-name globs, or /regex/
	Strategy       string   `yaml:"strategy"`        // redact | partial | hash | null
	Keep           int      `yaml:"keep"`
	Identities     []string `yaml:"identities"` // globs; empty means every identity
}

// DetectorConfig enables value detectors, which mask values of result columns
// whose lineage is unknown when the value looks sensitive.
type DetectorConfig struct {
	Cards       bool `yaml:"cards"`        // Luhn-valid 13–19 digit numbers
	Email       bool `yaml:"email"`        // e-mail addresses
	IBAN        bool `yaml:"iban"`         // IBANs with a valid mod-97 check
	NationalIDs bool `yaml:"national_ids"` // US SSN by pattern
	// AllColumns runs the enabled detectors on every unmasked result column,
	// not only on columns of unknown lineage.
	AllColumns bool `yaml:"all_columns"`
}

func (d DetectorConfig) any() bool { return d.Cards || d.Email || d.IBAN || d.NationalIDs }

// Config is the masking section of the policy file.
type Config struct {
	Rules   []Rule `yaml:"rules"`
	HashKey []byte `yaml:"-"`
	// Unknown decides statements that touch a masked table when the lineage
	// of a result column (or of a filter) cannot be determined: deny (default) or allow.
	Unknown   string         `yaml:"unknown"`
	Detectors DetectorConfig `yaml:"detectors"`
	// Probing decides statements whose WHERE, ON, GROUP BY, ORDER BY, HAVING or
	// window clauses read a masked column: deny (default) or allow.
	Probing string `yaml:"probing"`
}

// DeniedError is returned by Plan when a statement must be refused.
type DeniedError struct {
	Rule    string
	Message string
}

func (e *DeniedError) Error() string {
	if e.Rule == "" {
		return "masking: " + e.Message
	}
	return fmt.Sprintf("masking rule %q: %s", e.Rule, e.Message)
}

// rule is a compiled Rule.
type rule struct {
	Rule
	cols  []string         // lowercased db/table/column globs
	names []string         // lowercased column-name globs
	res   []*regexp.Regexp // column-name regexes
}

// serverCopies covers the places where the server itself keeps column
// values in clear: its engine-independent statistics (each column's lowest
// and highest value and a histogram of them, written by ANALYZE TABLE …
// PERSISTENT), the general and slow query logs when they are logged to
// tables, and the text of running and recent statements, literals included.
// Every identity with masking rules gets them redacted, and probing them
// refused, as for its own masked columns: a rule on customers.card would
// mean little while mysql.column_stats hands out its lowest and highest.
var serverCopies = func() *rule {
	r, err := compileRule(Rule{Name: "server-copies", Strategy: StrategyRedact, Columns: []string{
		"mysql.column_stats.min_value", "mysql.column_stats.max_value", "mysql.column_stats.histogram",
		"mysql.general_log.argument", "mysql.slow_log.sql_text",
		"information_schema.processlist.info", "information_schema.processlist.info_binary",
		"performance_schema.*.sql_text", "performance_schema.threads.processlist_info",
		"sys.*.current_statement", "sys.*.last_statement", "sys.*.waiting_query", "sys.*.blocking_query",
		"sys.*.sql_text",
	}})
	if err != nil {
		panic(err) // a constant
	}
	return r
}()

func compileRule(r Rule) (*rule, error) {
	switch r.Strategy {
	case StrategyRedact, StrategyPartial, StrategyHash, StrategyNull:
	case "":
		r.Strategy = StrategyRedact
	default:
		return nil, fmt.Errorf("compile rule %q: unknown strategy %q", r.Name, r.Strategy)
	}
	c := &rule{Rule: r}
	for _, p := range r.Columns {
		parts := strings.Split(strings.ToLower(p), ".")
		if len(parts) != 3 {
			return nil, fmt.Errorf("compile rule %q: column %q is not db.table.column", r.Name, p)
		}
		g := strings.Join(parts, "/")
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("compile rule %q: column %q: %w", r.Name, p, err)
		}
		c.cols = append(c.cols, g)
	}
	for _, p := range r.ColumnPatterns {
		if len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/' {
			re, err := regexp.Compile("(?i)" + p[1:len(p)-1])
			if err != nil {
				return nil, fmt.Errorf("compile rule %q: pattern %q: %w", r.Name, p, err)
			}
			c.res = append(c.res, re)
			continue
		}
		g := strings.ToLower(p)
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("compile rule %q: pattern %q: %w", r.Name, p, err)
		}
		c.names = append(c.names, g)
	}
	return c, nil
}

func (r *rule) appliesTo(identity string) bool {
	if len(r.Identities) == 0 {
		return true
	}
	for _, g := range r.Identities {
		if ok, _ := path.Match(g, identity); ok || g == identity {
			return true
		}
	}
	return false
}

// matches reports whether the lowercased db, table, column is masked by r.
func (r *rule) matches(db, table, col string) bool {
	if len(r.cols) > 0 {
		key := db + "/" + table + "/" + col
		for _, g := range r.cols {
			if ok, _ := path.Match(g, key); ok {
				return true
			}
		}
	}
	for _, g := range r.names {
		if ok, _ := path.Match(g, col); ok {
			return true
		}
	}
	for _, re := range r.res {
		if re.MatchString(col) {
			return true
		}
	}
	return false
}
