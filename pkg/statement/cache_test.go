package statement

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// TestClassifyCacheKeysOnDialect: the cache key holds the server and the
// sql_mode flags; under flags that change how strings and identifiers lex,
// nothing is cached (the normalizer does not know them).
func TestClassifyCacheKeysOnDialect(t *testing.T) {
	p := NewCache()
	maria := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	mysql := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MySQL, Version: 80036}}
	// One text, two servers: MySQL runs the 5.7 comment, MariaDB does not.
	q := "DELETE FROM t /*!50700 WHERE id = 1 */"
	a := p.Classify(q, "shop", maria)
	b := p.Classify(q, "shop", mysql)
	if a.HasWhere || !b.HasWhere {
		t.Errorf("has_where: MariaDB %v, MySQL %v; want false, true", a.HasWhere, b.HasWhere)
	}
	n := len(p.m)
	for _, m := range []sqltext.Mode{sqltext.NoBackslashEscapes, sqltext.ANSIQuotes} {
		d := maria
		d.Mode = m
		st := p.Classify(`SELECT "a" FROM t WHERE v = '\'`, "shop", d)
		if st.Cacheable || len(p.m) != n {
			t.Errorf("%s: cacheable %v, cache grew from %d to %d", d, st.Cacheable, n, len(p.m))
		}
	}
	d := maria
	d.Mode = sqltext.PipesAsConcat
	p.Classify("SELECT a || b FROM t", "shop", d)
	p.Classify("SELECT a || b FROM t", "shop", maria)
	if len(p.m) != n+2 {
		t.Errorf("PIPES_AS_CONCAT and the default mode share a cache entry: %d entries, want %d", len(p.m), n+2)
	}
}

// TestClassifyCacheByShape: statements differing only in literal values
// share one cached classification, found without allocating; where the
// digest keeps a number (ORDER BY 1) they do not; a miss parses once.
func TestClassifyCacheByShape(t *testing.T) {
	p := NewCache()
	d := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	first := p.Classify("SELECT c FROM sbtest1 WHERE id=1 AND pad='x'", "shop", d)
	if !first.Cacheable || first.Digest != "select `c` from `sbtest1` where `id` = ? and `pad` = ?" {
		t.Fatalf("first: cacheable %v, digest %q", first.Cacheable, first.Digest)
	}
	if again := p.Classify("SELECT c FROM sbtest1 WHERE id=4711 AND pad='it''s'", "shop", d); again != first {
		t.Fatal("a new literal missed the cache")
	}
	if other := p.Classify("SELECT c FROM sbtest1 WHERE id=1 AND pad='x'", "other", d); other == first {
		t.Fatal("another database shared the classification")
	}
	// A PREPARE's text is one literal of its shape: never shared, or an
	// unbounded DELETE would pass as the bounded one classified first.
	bounded := p.Classify("PREPARE p FROM 'DELETE FROM t WHERE id = 1'", "shop", d)
	unbounded := p.Classify("PREPARE p FROM 'DELETE FROM t'", "shop", d)
	if bounded.Cacheable || unbounded == bounded || unbounded.HasWhere {
		t.Fatalf("PREPARE of an unbounded DELETE after a bounded one: cacheable %v, has_where %v", bounded.Cacheable, unbounded.HasWhere)
	}
	a := p.Classify("SELECT c FROM sbtest1 ORDER BY 1", "shop", d)
	b := p.Classify("SELECT c FROM sbtest1 ORDER BY 2", "shop", d)
	if a == b || a.Digest == b.Digest {
		t.Fatalf("ORDER BY 1 and 2 share %q", a.Digest)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if p.Classify("SELECT c FROM sbtest1 WHERE id=42 AND pad='y'", "shop", d) != first {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("a cache hit allocates %v times", allocs)
	}

	// With a comment the executable text is built in a pooled buffer: a
	// hit allocates nothing, and a miss keeps its own copy of the text.
	const cq = "SELECT k FROM sbtest1 WHERE id=1 /* tool_call='a' */"
	want, err := sqltext.Executable(cq, d)
	if err != nil {
		t.Fatal(err)
	}
	commented := p.Classify(cq, "shop", d)
	p.Classify("DELETE FROM sbtest1 WHERE id=2 /* tool_call='bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' */", "shop", d)
	if commented.Text != want || commented.Digest != "select `k` from `sbtest1` where `id` = ?" {
		t.Fatalf("cached text %q, digest %q after the buffer was reused", commented.Text, commented.Digest)
	}
	allocs = testing.AllocsPerRun(200, func() {
		if p.Classify("SELECT k FROM sbtest1 WHERE id=7 /* tool_call='b' */", "shop", d) != commented {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("a cache hit with a comment allocates %v times", allocs)
	}
}

// BenchmarkClassify: a cache hit (sysbench's point select with a new id
// each time) and a miss (a new shape each time: parsed, converted, cached).
func BenchmarkClassify(b *testing.B) {
	d := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	var texts [1000]string
	for i := range texts {
		texts[i] = "SELECT c FROM sbtest1 WHERE id=" + strconv.Itoa(i+1)
	}
	b.Run("hit", func(b *testing.B) {
		p := NewCache()
		p.Classify(texts[0], "shop", d)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Classify(texts[i%len(texts)], "shop", d)
		}
	})
	b.Run("hit-comment", func(b *testing.B) {
		p := NewCache()
		commented := make([]string, len(texts))
		for i, t := range texts {
			commented[i] = t + " /* tool_call='call_42',model='m1' */"
		}
		p.Classify(commented[0], "shop", d)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Classify(commented[i%len(commented)], "shop", d)
		}
	})
	b.Run("miss", func(b *testing.B) {
		p := NewCache()
		shapes := make([]string, 4096)
		for i := range shapes {
			shapes[i] = "SELECT c AS c" + strconv.Itoa(i) + " FROM sbtest1 WHERE id=1"
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%len(shapes) == 0 {
				p = NewCache()
			}
			p.Classify(shapes[i%len(shapes)], "shop", d)
		}
	})
}

// A huge statement is neither kept nor marked shareable: its parse tree
// holds its literals, and whatever keeps it keeps them.
func TestClassifyCacheSkipsHugeStatements(t *testing.T) {
	p := NewCache()
	d := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	huge := "SELECT c FROM sbtest1 WHERE pad='" + strings.Repeat("x", maxCachedText) + "'"
	st := p.Classify(huge, "shop", d)
	if !st.Parsed || st.Cacheable {
		t.Fatalf("huge statement: parsed %v, cacheable %v; want parsed and not cacheable", st.Parsed, st.Cacheable)
	}
	if again := p.Classify(huge, "shop", d); again == st {
		t.Fatal("the huge statement's classification was kept")
	}
	small := p.Classify("SELECT c FROM sbtest1 WHERE pad='y'", "shop", d)
	if !small.Cacheable || p.Classify("SELECT c FROM sbtest1 WHERE pad='z'", "shop", d) != small {
		t.Fatal("statements of the same shape below the bound are still shared")
	}
}
