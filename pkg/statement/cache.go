package statement

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// Cache maps (database, dialect, shape of the text) to a classification, so
// that the statements agents send over and over — one shape, new literals —
// are parsed once. It is cleared when full rather than evicting one by one:
// cheap, and bounded. A hit allocates nothing. Safe for concurrent use; a
// nil *Cache classifies every text.
type Cache struct {
	mu sync.RWMutex
	m  map[string]*Statement
}

// cacheMax bounds the entries a Cache holds.
const cacheMax = 8192

// NewCache returns an empty Cache.
func NewCache() *Cache { return &Cache{m: make(map[string]*Statement)} }

// get looks k up without copying it into a string.
func (c *Cache) get(k []byte) *Statement {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[string(k)]
}

func (c *Cache) put(k string, st *Statement) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheMax {
		clear(c.m)
	}
	c.m[k] = st
}

// Classify is ClassifyAs, answered from the cache for a Cacheable
// statement whose shape it has seen in the same database and dialect. The
// Statement returned may be shared: it must not be modified.
func (c *Cache) Classify(sql, db string, d sqltext.Dialect) *Statement {
	if c == nil {
		return ClassifyAs(sql, db, d)
	}
	bufs := classifyBufs.Get().(*scratch)
	defer bufs.put()
	// Everything below reads the text as the server runs it (comments
	// blanked, executable ones kept as SQL), built in a pooled buffer when
	// there are comments; a text whose reading cannot be decided is refused
	// by ClassifyAs.
	text, exec, err := sqltext.ExecutableInto(bufs.exec[:0], sql, d)
	bufs.exec = exec
	if err != nil {
		return ClassifyAs(sql, db, d)
	}
	// The key is the database, the dialect and the text's shape (its
	// literals' values erased: two texts of one shape parse alike), built in
	// a pooled buffer: a hit allocates nothing. There is no shape under
	// ANSI_QUOTES or NO_BACKSLASH_ESCAPES, where the normalizer behind the
	// digest reads strings differently from the server: nothing is cached.
	key, ok := sqltext.AppendShape(appendKeyPrefix(bufs.key[:0], db, d), text, d)
	bufs.key = key
	if ok {
		if st := c.get(key); st != nil {
			return st
		}
	}
	if unsafe.StringData(text) != unsafe.StringData(sql) {
		// The classification keeps the text (its parse tree points into
		// it): out of the pooled buffer.
		text = strings.Clone(text)
	}
	st := ClassifyExecutable(text, db, d)
	if len(text) > maxCachedText {
		// Not shared: nothing may keep it (the masker keeps analyses of
		// shared trees).
		st.Cacheable = false
	}
	if !ok {
		// No shape to share it by (a string that may be a name, a
		// dialect whose strings the normalizer misreads): nothing else
		// that shares by shape or digest may keep it either.
		st.Cacheable = false
	}
	if ok && st.Parsed && st.Cacheable {
		c.put(string(key), st)
	}
	return st
}

// maxCachedText bounds the statements whose classification is kept and
// shared: the parse tree holds the first statement's literals, and a cache
// bounded by count would otherwise keep a 64 MiB string alive for every
// later statement of its shape.
const maxCachedText = 64 << 10

// scratch holds a statement's executable text and cache key while it is
// classified.
type scratch struct{ exec, key []byte }

var classifyBufs = sync.Pool{New: func() any { return &scratch{exec: make([]byte, 0, 512), key: make([]byte, 0, 512)} }}

// put returns the buffers to the pool, but not those a huge statement grew.
func (b *scratch) put() {
	const keep = 64 << 10
	if cap(b.exec) > keep {
		b.exec = make([]byte, 0, 512)
	}
	if cap(b.key) > keep {
		b.key = make([]byte, 0, 512)
	}
	classifyBufs.Put(b)
}

// appendKeyPrefix appends db and the dialect (flavour, sql_mode flags,
// character set, version) ahead of a shape.
func appendKeyPrefix(b []byte, db string, d sqltext.Dialect) []byte {
	b = append(b, db...)
	b = append(b, 0, byte(d.Flavor), byte(d.Mode), byte(d.Charset))
	for v := d.Version; ; v >>= 8 {
		b = append(b, byte(v))
		if v < 256 {
			break
		}
	}
	return append(b, 0)
}

// ReadOnly is the package's ReadOnly and BoundWrite its BoundWrite: with
// Classify, a Cache answers every question the proxy asks about a statement
// (proxy.Policy, next to the policy engine's Decide).
func (c *Cache) ReadOnly(sql string, st *Statement, db string, prepared func(name string) (string, bool)) (string, []TableRef) {
	return ReadOnly(sql, st, db, prepared)
}

// BoundWrite is the package's BoundWrite (see ReadOnly).
func (c *Cache) BoundWrite(st *Statement, db string) BoundedWrite { return BoundWrite(st, db) }
