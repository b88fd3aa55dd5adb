package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// The adapters below connect the packages to the small interfaces the proxy
// declares, so the proxy never imports policy, masking or identity.

type policyAdapter struct {
	engine *policy.Engine
	cache  *classCache
}

// cacheableKinds are statement kinds whose classification depends only on
// the text's shape (literal values erased) and the current database: plain
// reads and writes, the bulk of what agents send. KILL, USE, PREPARE and
// the rest carry meaning in their literals or identifiers and are parsed
// every time.
var cacheableKinds = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "REPLACE": true}

// classCache maps (db, dialect, shape of the SQL) to a classification. It is
// cleared when full rather than evicting one by one: cheap, and bounded.
type classCache struct {
	mu sync.RWMutex
	m  map[string]*proxy.Statement
}

const classCacheMax = 8192

func newClassCache() *classCache { return &classCache{m: make(map[string]*proxy.Statement)} }

// get looks k up without copying it into a string.
func (c *classCache) get(k []byte) *proxy.Statement {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[string(k)]
}

func (c *classCache) put(k string, st *proxy.Statement) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= classCacheMax {
		clear(c.m)
	}
	c.m[k] = st
}

func (p policyAdapter) Version() uint64 { return p.engine.Version() }

// Limits resolves an identity's limits; policy.EffectiveLimits and
// proxy.Limits have the same layout, so the compiler checks they agree.
func (p policyAdapter) Limits(identity string) proxy.Limits {
	return proxy.Limits(p.engine.LimitsFor(identity))
}

func (p policyAdapter) ReadOnly(sql string, st *proxy.Statement, db string, prepared func(string) (string, bool)) (string, []proxy.TableRef) {
	pst, _ := st.Opaque.(*policy.Statement)
	why, tables := policy.ReadOnly(sql, pst, db, prepared)
	return why, toTableRefs(tables)
}

func toTableRefs(ts []policy.TableRef) []proxy.TableRef {
	if len(ts) == 0 {
		return nil
	}
	out := make([]proxy.TableRef, len(ts))
	for i, t := range ts {
		out[i] = proxy.TableRef{Schema: t.Schema, Name: t.Name}
	}
	return out
}

func (p policyAdapter) BoundWrite(st *proxy.Statement, db string) proxy.BoundedWrite {
	pst, _ := st.Opaque.(*policy.Statement)
	b := policy.BoundWrite(pst, db)
	return proxy.BoundedWrite{Write: b.Write, Tables: toTableRefs(b.Tables), Execute: b.Execute, Refuse: b.Refuse}
}

func (p policyAdapter) Classify(sql, db string, d sqltext.Dialect) *proxy.Statement {
	if p.cache == nil {
		return p.convert(policy.ClassifyAs(sql, db, d), d)
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
		return p.convert(policy.ClassifyAs(sql, db, d), d)
	}
	// The key is the database, the dialect and the text's shape (its
	// literals' values erased: two texts of one shape parse alike), built in
	// a pooled buffer: a hit allocates nothing. There is no shape under
	// ANSI_QUOTES or NO_BACKSLASH_ESCAPES, where the normalizer behind the
	// digest reads strings differently from the server: nothing is cached.
	key, ok := sqltext.AppendShape(appendKeyPrefix(bufs.key[:0], db, d), text, d)
	bufs.key = key
	if ok {
		if st := p.cache.get(key); st != nil {
			return st
		}
	}
	if unsafe.StringData(text) != unsafe.StringData(sql) {
		// The classification keeps the text (its parse tree points into
		// it): out of the pooled buffer.
		text = strings.Clone(text)
	}
	st := p.convert(policy.ClassifyExecutable(text, db, d), d)
	if ok && st.Parsed && st.Cacheable {
		p.cache.put(string(key), st)
	}
	return st
}

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

// convert turns the policy's classification into the proxy's.
func (p policyAdapter) convert(st *policy.Statement, d sqltext.Dialect) *proxy.Statement {
	out := &proxy.Statement{
		Classification: &record.Classification{Kind: st.Kind, TablesRead: st.TablesRead, TablesWrite: st.TablesWritten, Statements: st.Count},
		Digest:         st.Digest,
		Parsed:         st.Parsed,
		Opaque:         st,
		Cacheable:      st.Count == 1 && cacheableKinds[st.Kind] && !st.DynamicSQL && d.Mode&sqltext.LexMode == 0,
		Refused:        st.Refused,
		Reread:         st.SetsSession || !st.Parsed || slices.Contains(st.Kinds, "EXECUTE"),
		// SHOW GRANTS, SHOW CREATE USER, CALL, EXECUTE, unparsed text.
		ScrubCredentials: st.ShowsCredentials,
	}
	if len(st.Kinds) > 1 {
		out.Classification.Kinds = st.Kinds
	}
	for _, n := range st.Nodes {
		switch n := n.(type) {
		case *ast.UseStmt:
			out.UseDB = n.DBName
		case *ast.KillStmt:
			out.KillTarget = n.ConnectionID
		case *ast.LoadDataStmt:
			if n.FileLocRef == ast.FileLocClient {
				out.LocalInfile = true
			}
		case *ast.PrepareStmt:
			out.Prepares = append(out.Prepares, proxy.SQLPrepare{Name: strings.ToLower(n.Name), Text: n.SQLText, Dynamic: n.SQLVar != nil})
		case *ast.DeallocateStmt:
			out.Deallocates = append(out.Deallocates, strings.ToLower(n.Name))
		}
	}
	return out
}

func (p policyAdapter) Decide(id *proxy.Identity, st *proxy.Statement, s proxy.Session) proxy.Verdict {
	pst, _ := st.Opaque.(*policy.Statement)
	if pst == nil {
		pst = &policy.Statement{Kind: policy.KindUnparsed, Count: 1}
	}
	var rec *record.Identity
	if id != nil {
		rec = id.Record
	}
	d := p.engine.Decide(policy.Input{Identity: rec, Statement: pst, Session: policy.Session{
		ID: s.ID, DB: s.DB, User: s.User, ClientAddr: s.ClientAddr, Command: s.Command}})
	return proxy.Verdict{Rule: d.Rule, Action: d.Action, Message: d.Message, ApprovalMode: d.ApprovalMode}
}

type maskerAdapter struct{ m *masking.Masker }

func (a maskerAdapter) Plan(ctx context.Context, id *proxy.Identity, db, sql string, st *proxy.Statement) (proxy.MaskPlan, error) {
	var nodes []ast.StmtNode
	d := sqltext.Dialect{Server: sqltext.DefaultServer}
	if pst, ok := st.Opaque.(*policy.Statement); ok {
		nodes, d = pst.Nodes, pst.Dialect
	}
	plan := a.m.Plan
	if st.Cacheable && st.Parsed {
		// The classification is the cache's, shared by every statement of
		// its shape: so is its parse tree, whose analysis the masker keeps.
		plan = a.m.PlanShared
	}
	p, err := plan(ctx, id.Name, db, sql, d, nodes)
	if err != nil {
		var de *masking.DeniedError
		if errors.As(err, &de) {
			return nil, &proxy.MaskDenied{Rule: orDefault(de.Rule, "masking"), Message: de.Message}
		}
		return nil, &proxy.MaskDenied{Rule: "masking", Message: fmt.Sprintf("cannot plan masking: %v", err)}
	}
	if p == nil {
		return nil, nil
	}
	return planAdapter{p}, nil
}

type planAdapter struct{ p *masking.Plan }

func (a planAdapter) ResultSet(i int, cols [][]byte) (proxy.RowMasker, error) {
	rm, err := a.p.ResultSet(i, cols)
	if err != nil || rm == nil {
		return nil, err
	}
	return rm, nil
}

func (a planAdapter) Summary() []record.Masked { return a.p.Summary() }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
