package record

import "encoding/json"

// Results configures optional retention of result rows in outcome records
// (`audit.results`). Only values as the client received them (masked) are
// kept. Off by default.
type Results struct {
	Enabled  bool `yaml:"enabled"`
	MaxRows  int  `yaml:"max_rows"`  // default 10 when enabled
	MaxBytes int  `yaml:"max_bytes"` // default 4096 when enabled
}

// ResultCollector accumulates rows for one outcome record within the limits.
// The zero value (or one from a disabled Results) collects nothing.
type ResultCollector struct {
	enabled   bool
	maxRows   int
	maxBytes  int
	bytes     int
	rows      [][]any
	truncated bool
}

// NewCollector returns a collector for one statement's result.
func (r Results) NewCollector() *ResultCollector {
	if !r.Enabled {
		return &ResultCollector{}
	}
	c := &ResultCollector{enabled: true, maxRows: r.MaxRows, maxBytes: r.MaxBytes}
	if c.maxRows <= 0 {
		c.maxRows = 10
	}
	if c.maxBytes <= 0 {
		c.maxBytes = 4096
	}
	return c
}

// Want reports whether another row would still be kept; the proxy can skip
// decoding rows once it returns false.
func (c *ResultCollector) Want() bool {
	return c != nil && c.enabled && !c.truncated && len(c.rows) < c.maxRows
}

// Add keeps one (already masked) row if it fits the limits. NULL is nil;
// other values are strings or numbers as decoded.
func (c *ResultCollector) Add(row []any) {
	if !c.Want() {
		if c != nil && c.enabled {
			c.truncated = true
		}
		return
	}
	size := 2
	for _, v := range row {
		switch x := v.(type) {
		case string:
			size += len(x) + 3
		case []byte:
			size += len(x) + 3
		default:
			b, _ := json.Marshal(x)
			size += len(b) + 1
		}
	}
	if c.bytes+size > c.maxBytes {
		c.truncated = true
		return
	}
	c.bytes += size
	cp := make([]any, len(row))
	for i, v := range row {
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		cp[i] = v
	}
	c.rows = append(c.rows, cp)
}

// Apply stores the kept rows into an outcome record (no-op when disabled or
// empty) and reports whether rows were left out.
func (c *ResultCollector) Apply(r *Record) (truncated bool) {
	if c == nil || !c.enabled {
		return false
	}
	if len(c.rows) > 0 {
		r.Results = c.rows
	}
	return c.truncated
}
