package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Every statement counts itself (Statement) and its policy decision
// (Decision). Asking a vector for a child by label values hashes the
// values and looks them up under the vector's lock, and the values are
// first normalized (upper-cased, checked against their sets): about a
// microsecond per statement. The children are therefore kept here, made on
// first use (a series appears in a scrape once it has been counted, as
// before) and then reached by index with an atomic load.

// vec is a labelled vector whose children are T.
type vec[T any] interface{ WithLabelValues(...string) T }

// lazy holds one child of a vector, made on first use.
type lazy[T any] struct{ p atomic.Pointer[T] }

// get1 and get2 return the child of a vector of one or two labels. (Not
// one variadic get: its slice of values would be allocated on every call,
// not only on the first.)
func (l *lazy[T]) get1(v vec[T], a string) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return l.store(v.WithLabelValues(a))
}

func (l *lazy[T]) get2(v vec[T], a, b string) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return l.store(v.WithLabelValues(a, b))
}

// store keeps c. Two callers racing both asked the vector, which gave
// both the same child.
func (l *lazy[T]) store(c T) T {
	l.p.Store(&c)
	return c
}

// kindSeries are the series of one statement kind label.
type kindSeries struct {
	duration lazy[prometheus.Observer]
	byStatus [len(statusLabels)]lazy[prometheus.Counter]
}

// ruleSeries are the decision counters of one policy rule name, as the
// policy gives it; label is what it is exported as.
type ruleSeries struct {
	label    string
	byAction [len(actionLabels)]lazy[prometheus.Counter]
}

// ruleSeriesCache maps rule names to their series. Rule names come from
// configuration and change only on reload; names exported as Other (past
// the cap, or unprintable) are kept only while the map is small, so a
// policy that renames its rules on every reload cannot grow it unbounded.
type ruleSeriesCache struct {
	mu  sync.RWMutex
	m   map[string]*ruleSeries
	max int
}

func (c *ruleSeriesCache) get(rule string, label func(string) string) *ruleSeries {
	c.mu.RLock()
	rs := c.m[rule]
	c.mu.RUnlock()
	if rs != nil {
		return rs
	}
	rs = &ruleSeries{label: label(rule)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[rule]; old != nil {
		return old
	}
	if rs.label != Other || len(c.m) < c.max {
		c.m[rule] = rs
	}
	return rs
}
