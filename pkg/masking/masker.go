package masking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // value expressions for the parser

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// SchemaSource answers schema questions from the backend. Masker caches the answers.
type SchemaSource interface {
	// Columns lists a table's (or view's) columns in ordinal order (information_schema.COLUMNS).
	Columns(ctx context.Context, db, table string) ([]string, error)
	// View returns a view's definition (information_schema.VIEWS); ok is false for a base table.
	View(ctx context.Context, db, view string) (definition string, ok bool, err error)
}

// Masker plans masking for statements. It is safe for concurrent use.
type Masker struct {
	state  atomic.Pointer[state]
	schema SchemaSource

	mu    sync.Mutex
	cols  map[string][]string
	views map[string]*viewEntry
	// schemaErrs counts failed schema lookups (answers not cached), so an
	// analysis that met one is not kept either.
	schemaErrs atomic.Uint64

	// Analyses of shared parse trees (PlanShared), dropped with the schema.
	planMu sync.Mutex
	plans  map[planKey]*Plan

	// Schema changes made through the proxy (SchemaChange): epoch counts
	// their starts and ends, changing those under way. A plan made in one
	// epoch masks every column of a result set that arrives in another, or
	// while a change is under way: the server may have run the statement
	// against a schema the plan did not see. Caches keep only answers read
	// in the current epoch with no change under way.
	epoch    atomic.Uint64
	changing atomic.Int64
	// flushed is when the schema caches were last emptied (unix ns); they
	// are emptied at least every SchemaTTL, for changes made around the
	// proxy (a DBA's ALTER VIEW, another node, an event).
	flushed atomic.Int64

	parsers sync.Pool
}

// planKey identifies the analysis of one shared parse tree for an identity,
// a session database and a dialect under one rule set. The key holds the
// tree, so its address is not reused while the entry lives.
type planKey struct {
	st       *state
	nodes    *ast.StmtNode
	n        int
	identity string
	db       string
	d        sqltext.Dialect
}

// maxPlans bounds the kept analyses; they are all dropped when it is reached.
const maxPlans = 4096

// SchemaTTL is how long table columns and view definitions read from
// information_schema are trusted: a change made around the proxy is
// followed within it. Changes made through the proxy are followed at once
// (SchemaChange).
const SchemaTTL = time.Second

type viewEntry struct {
	ok   bool
	stmt ast.StmtNode
	err  error
}

// state is one immutable rule set.
type state struct {
	cfg      Config
	rules    []*rule
	err      error
	mu       sync.RWMutex
	byIdent  map[string][]*rule
	detector bool
}

// New returns a Masker for cfg; invalid rules make every Plan fail closed.
func New(cfg Config, schema SchemaSource) *Masker {
	m := &Masker{schema: schema, cols: map[string][]string{}, views: map[string]*viewEntry{}}
	m.parsers.New = func() any { return parser.New() }
	m.SetRules(cfg)
	return m
}

// SetRules swaps in a new configuration (hot reload) and forgets cached schema.
// It returns the error that makes the configuration invalid, if any; an
// invalid configuration denies every statement of identities with rules.
func (m *Masker) SetRules(cfg Config) error {
	st := &state{cfg: cfg}
	for _, r := range cfg.Rules {
		c, err := compileRule(r)
		if err != nil {
			st.err = err
			continue
		}
		st.rules = append(st.rules, c)
	}
	if st.cfg.Unknown == "" {
		st.cfg.Unknown = Deny
	}
	if st.cfg.Probing == "" {
		st.cfg.Probing = Deny
	}
	st.detector = cfg.Detectors.any()
	m.state.Store(st)
	m.InvalidateSchema()
	return st.err
}

// InvalidateSchema forgets cached table columns and view definitions.
func (m *Masker) InvalidateSchema() {
	m.flushed.Store(time.Now().UnixNano())
	m.mu.Lock()
	m.cols = map[string][]string{}
	m.views = map[string]*viewEntry{}
	m.mu.Unlock()
	m.planMu.Lock()
	m.plans = nil
	m.planMu.Unlock()
}

// SchemaChange is called before a statement that may change tables or
// views (DDL, a procedure call, EXECUTE, text the parser cannot read) is
// sent to the server; done, once its reply has arrived (or the session
// ended). Meanwhile, and for every plan made before done, result sets are
// masked whole; the caches are emptied at both ends.
func (m *Masker) SchemaChange() (done func()) {
	m.changing.Add(1)
	m.epoch.Add(1)
	m.InvalidateSchema()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.epoch.Add(1)
			m.InvalidateSchema()
			m.changing.Add(-1)
		})
	}
}

// current reports whether answers read in epoch e may be cached; call it
// under the lock of the cache it guards (InvalidateSchema takes them after
// moving the epoch on, so an answer checked here is either refused or
// emptied out).
func (m *Masker) current(e uint64) bool {
	return m.epoch.Load() == e && m.changing.Load() == 0
}

// begin starts the analysis of a statement for identity: its rules and the
// schema epoch, the schema caches emptied first when they are SchemaTTL old
// (only when there is something to analyse: no clock read otherwise).
func (m *Masker) begin(st *state, identity string) (rs []*rule, epoch uint64) {
	rs = st.rulesFor(identity)
	if len(rs) > 0 || st.detector {
		now := time.Now().UnixNano()
		last := m.flushed.Load()
		if now-last > int64(SchemaTTL) && m.flushed.CompareAndSwap(last, now) {
			m.InvalidateSchema()
		}
	}
	return rs, m.epoch.Load()
}

var noRules = []*rule{}

func (st *state) rulesFor(identity string) []*rule {
	if len(st.rules) == 0 {
		return nil
	}
	st.mu.RLock()
	rs, ok := st.byIdent[identity]
	st.mu.RUnlock()
	if ok {
		return rs
	}
	for _, r := range st.rules {
		if r.appliesTo(identity) {
			rs = append(rs, r)
		}
	}
	if rs == nil {
		rs = noRules
	} else {
		rs = append(rs, serverCopies)
	}
	st.mu.Lock()
	if st.byIdent == nil {
		st.byIdent = map[string][]*rule{}
	}
	st.byIdent[identity] = rs
	st.mu.Unlock()
	return rs
}

// Plan says, for one statement, how each of its result sets is masked.
type Plan struct {
	st      *state
	rules   []*rule
	results []*resultPlan
	// variable is the index from which the number of result sets is unknown (CALL, EXECUTE).
	variable int
	// touched: the statement reads a table with masked columns.
	touched bool
	// guard: the analysis found nothing to mask; the plan only watches for
	// a schema change between the analysis and the result (then everything
	// is masked).
	guard bool
	m     *Masker
	epoch uint64 // the masker's epoch when the analysis began
	mu    sync.Mutex
	masks []*colMask
}

// RedactErrors reports whether the statement's errors and warnings must be
// kept from the client (they can quote or answer for a value it reads):
// when it reads masked data, or the schema changed under its plan.
func (p *Plan) RedactErrors() bool { return !p.guard || p.Stale() }

// Stale reports whether a schema change went through the proxy since p's
// analysis began, or is under way: its result sets are then masked whole,
// and a prepared statement should be planned again.
func (p *Plan) Stale() bool {
	return p != nil && p.m != nil && !p.m.current(p.epoch)
}

// resultPlan is the lineage of one result set.
type resultPlan struct {
	cols    []lineage
	unknown bool // column count or lineage not known
	noData  bool // SHOW, EXPLAIN: metadata, not table data
}

// Plan analyses a statement for identity in session database db, as a
// server of dialect d reads it (executable comments, sql_mode). stmts are
// the statements the proxy parsed from the same text in the same dialect
// (nil: Plan parses sql itself). It returns a nil Plan when nothing can be
// masked, and a *DeniedError when the statement must be refused.
func (m *Masker) Plan(ctx context.Context, identity, db, sql string, d sqltext.Dialect, stmts []ast.StmtNode) (*Plan, error) {
	st := m.state.Load()
	rs, epoch := m.begin(st, identity)
	return m.planFor(ctx, st, rs, epoch, db, sql, d, stmts)
}

// PlanStatement is Plan for a statement pkg/statement classified: its parse
// tree and dialect are reused, and a Cacheable one's tree is the
// classification cache's, shared by every statement of its shape, so its
// analysis is kept (PlanShared).
func (m *Masker) PlanStatement(ctx context.Context, identity, db, sql string, st *statement.Statement) (*Plan, error) {
	if st == nil {
		return m.Plan(ctx, identity, db, sql, sqltext.Dialect{Server: sqltext.DefaultServer}, nil)
	}
	if st.Cacheable && st.Parsed {
		return m.PlanShared(ctx, identity, db, sql, st.Dialect, st.Nodes)
	}
	return m.Plan(ctx, identity, db, sql, st.Dialect, st.Nodes)
}

// planFor analyses a statement with the identity's rules rs from begin.
func (m *Masker) planFor(ctx context.Context, st *state, rs []*rule, epoch uint64, db, sql string, d sqltext.Dialect, stmts []ast.StmtNode) (*Plan, error) {
	if len(rs) == 0 && !st.detector && st.err == nil {
		return nil, nil
	}
	if st.err != nil {
		return nil, &DeniedError{Message: "masking rules are invalid: " + st.err.Error()}
	}
	if stmts == nil {
		text, err := sqltext.Executable(sql, d)
		if err == nil {
			stmts, err = m.parse(text, d.Mode)
		}
		if err != nil {
			if len(rs) == 0 || st.cfg.Unknown == Allow {
				return &Plan{st: st, variable: 0}, nil
			}
			return nil, &DeniedError{Message: "statement cannot be parsed, so masked columns cannot be protected"}
		}
	}
	p, err := m.plan(ctx, st, rs, epoch, db, d, stmts)
	if err != nil {
		return nil, err
	}
	if !p.needed() {
		if len(rs) == 0 {
			return nil, nil
		}
		// Nothing to mask in the schema as read; should it change before
		// the result comes, everything is.
		return &Plan{st: st, rules: rs, variable: -1, guard: true, m: m, epoch: epoch}, nil
	}
	return p, nil
}

// PlanShared is Plan for stmts shared, unchanged, by every statement of one
// shape (the proxy's classification cache hands the same parse tree to
// each): the analysis — which result column comes from which masked column —
// is made once per tree, identity, database and dialect and kept until the
// rules or the schema change; each call gets a fresh Plan (its own counts).
// Analyses that met a failed schema lookup, or ended in an error, are not
// kept.
func (m *Masker) PlanShared(ctx context.Context, identity, db, sql string, d sqltext.Dialect, stmts []ast.StmtNode) (*Plan, error) {
	if len(stmts) == 0 {
		return m.Plan(ctx, identity, db, sql, d, stmts)
	}
	st := m.state.Load()
	rs, epoch := m.begin(st, identity)
	k := planKey{st: st, nodes: &stmts[0], n: len(stmts), identity: identity, db: db, d: d}
	m.planMu.Lock()
	t, ok := m.plans[k]
	m.planMu.Unlock()
	if ok {
		if t == nil {
			return nil, nil
		}
		return t.fresh(), nil
	}
	errs := m.schemaErrs.Load()
	p, err := m.planFor(ctx, st, rs, epoch, db, sql, d, stmts)
	if err != nil || m.schemaErrs.Load() != errs {
		return p, err
	}
	if p != nil {
		t = p.fresh()
	}
	m.planMu.Lock()
	if m.current(epoch) {
		if m.plans == nil || len(m.plans) >= maxPlans {
			m.plans = map[planKey]*Plan{}
		}
		m.plans[k] = t
	}
	m.planMu.Unlock()
	return p, nil
}

// fresh is a new Plan with p's analysis and no masks counted yet.
func (p *Plan) fresh() *Plan {
	return &Plan{st: p.st, rules: p.rules, results: p.results, variable: p.variable, touched: p.touched,
		guard: p.guard, m: p.m, epoch: p.epoch}
}

// parse never panics: the parser panics on some literals (a decimal of more
// than 81 digits), which must make the statement unparsed, not end the
// session. A parser that panicked is not reused.
func (m *Masker) parse(sql string, mode sqltext.Mode) (stmts []ast.StmtNode, err error) {
	defer func() {
		if r := recover(); r != nil {
			stmts, err = nil, fmt.Errorf("parse statement: parser panic: %v", r)
		}
	}()
	ps := m.parsers.Get().(*parser.Parser)
	ps.SetSQLMode(mode.ParserMode())
	ps.SetParserConfig(parser.ParserConfig{EnableWindowFunction: true})
	stmts, _, err = ps.ParseSQL(sql)
	if len(sql) <= 64<<10 {
		m.parsers.Put(ps) // not one that holds a huge statement's text and tree
	}
	if err != nil {
		return nil, fmt.Errorf("parse statement: %w", err)
	}
	return stmts, nil
}

func (p *Plan) needed() bool {
	if p.st.detector || p.touched {
		// A statement reading a masked table keeps its plan even when no
		// result column is derived from a masked one: the result's own
		// column origins and shape are checked again as it streams.
		return true
	}
	if p.variable >= 0 {
		return true
	}
	for _, r := range p.results {
		if r.unknown {
			return true
		}
		for _, l := range r.cols {
			if l.rule != nil {
				return true
			}
		}
	}
	return false
}

// RowMasker rewrites the rows of one result set.
type RowMasker struct {
	rw    *rows.Rewriter
	cols  []*colMask
	types []byte
}

// ResultSet returns the masker for the index-th result set of the statement,
// given its raw column-definition payloads, or nil when no column is masked.
func (p *Plan) ResultSet(index int, columns [][]byte) (*RowMasker, error) {
	stale := p.Stale()
	if p.guard && !stale {
		return nil, nil
	}
	var rp *resultPlan
	if index < len(p.results) && (p.variable < 0 || index < p.variable) {
		rp = p.results[index]
	}
	if rp != nil && rp.noData && !stale {
		return nil, nil
	}
	masks := make([]*colMask, len(columns))
	types := make([]byte, len(columns))
	edit := make([]bool, len(columns))
	var fill []bool
	any := false
	// The result is not what was planned — the schema changed since the
	// analysis (a column count that differs, a change through the proxy):
	// mask every column rather than guess.
	mismatch := stale || (rp != nil && !rp.unknown && len(rp.cols) != len(columns))
	for i, def := range columns {
		col, err := wire.ParseColumn(def)
		if err != nil {
			return nil, fmt.Errorf("plan result set %d: %w", index, err)
		}
		types[i] = col.Type
		var r *rule
		var source string
		unknown := rp == nil || rp.unknown
		direct := false
		if rp != nil && !rp.unknown && !mismatch {
			r, source = rp.cols[i].rule, rp.cols[i].source
			unknown, direct = rp.cols[i].unknown, rp.cols[i].direct
		}
		if mismatch && len(p.rules) > 0 {
			r, source = &rule{Rule: Rule{Name: "lineage-mismatch", Strategy: StrategyRedact}}, string(col.Name)
		}
		if r == nil {
			// Defence in depth: the server's own origin for the column.
			if len(col.OrgTable) > 0 && len(col.OrgName) > 0 {
				db, t, n := strings.ToLower(string(col.Schema)), strings.ToLower(string(col.OrgTable)), strings.ToLower(string(col.OrgName))
				for _, cand := range p.rules {
					if cand.matches(db, t, n) {
						r, source, direct = cand, db+"."+t+"."+n, true
						break
					}
				}
			}
		}
		var cm *colMask
		switch {
		case r != nil:
			cm = newColMask(col, r)
			cm.source = source
			cm.count = new(atomic.Uint64)
		case p.st.detector && (unknown || p.st.cfg.Detectors.AllColumns):
			cm = newColMask(col, nil)
			cm.detect = p.st.cfg.Detectors
			cm.source = string(col.Name)
			cm.dcount = new(atomic.Uint64)
		}
		if cm != nil {
			masks[i], edit[i], any = cm, true, true
		}
		if r != nil && !direct && r.Strategy == StrategyRedact && col.Type != mysql.MYSQL_TYPE_NULL {
			// A value computed from a masked one is redacted, and so is its
			// NULL: whether JSON_EXTRACT('{"4":1}', CONCAT('$."',
			// SUBSTR(card, 1, 1), '"')) is NULL tells the card's first digit.
			// A masked column read as it is keeps its NULLs (whether it
			// holds a value at all).
			if fill == nil {
				fill = make([]bool, len(columns))
			}
			fill[i] = true
		}
	}
	if !any {
		return nil, nil
	}
	p.mu.Lock()
	for _, cm := range masks {
		if cm != nil {
			p.masks = append(p.masks, cm)
		}
	}
	p.mu.Unlock()
	key := p.st.cfg.HashKey
	e := &editor{cols: masks, hash: hasher{key: key}}
	rw := rows.NewRewriter(types, edit, e)
	rw.FillNulls(fill)
	return &RowMasker{rw: rw, cols: masks, types: types}, nil
}

// Text masks a text-protocol row payload. Unchanged rows come back as row itself.
func (r *RowMasker) Text(row, dst []byte) ([]byte, bool, error) { return r.rw.Text(row, dst) }

// Binary masks a binary-protocol row payload. Unchanged rows come back as row itself.
func (r *RowMasker) Binary(row, dst []byte) ([]byte, bool, error) { return r.rw.Binary(row, dst) }

// ColumnDef returns the i-th column definition rewritten to match the masked
// values (see strategy.go), or def itself when it needs no change.
func (r *RowMasker) ColumnDef(i int, def []byte) []byte {
	if i < 0 || i >= len(r.cols) || r.cols[i] == nil {
		return def
	}
	return r.cols[i].columnDef(def)
}

// Summary reports the masked values since the plan was made or last
// summarized, per source column and rule, and resets the counts.
func (p *Plan) Summary() []record.Masked {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []record.Masked
	add := func(col, rule string, n uint64) {
		if n == 0 {
			return
		}
		for i := range out {
			if out[i].Column == col && out[i].Rule == rule {
				out[i].Count += n
				return
			}
		}
		out = append(out, record.Masked{Column: col, Rule: rule, Count: n})
	}
	for _, cm := range p.masks {
		if cm.count != nil {
			add(cm.source, cm.rule.Name, cm.count.Swap(0))
		}
		if cm.dcount != nil {
			add(cm.source, "detector", cm.dcount.Swap(0))
		}
	}
	p.masks = p.masks[:0]
	return out
}

var errNoSchema = errors.New("no schema source")

func (m *Masker) columns(ctx context.Context, epoch uint64, db, table string) ([]string, error) {
	key := db + "\x00" + table
	m.mu.Lock()
	c, ok := m.cols[key]
	m.mu.Unlock()
	if ok {
		return c, nil
	}
	if m.schema == nil {
		m.schemaErrs.Add(1)
		return nil, errNoSchema
	}
	c, err := m.schema.Columns(ctx, db, table)
	if err != nil {
		m.schemaErrs.Add(1)
		return nil, fmt.Errorf("read columns of %s.%s: %w", db, table, err)
	}
	for i := range c {
		c[i] = strings.ToLower(c[i])
	}
	m.mu.Lock()
	if m.current(epoch) {
		m.cols[key] = c
	}
	m.mu.Unlock()
	return c, nil
}

func (m *Masker) view(ctx context.Context, epoch uint64, db, name string) *viewEntry {
	key := db + "\x00" + name
	m.mu.Lock()
	v, ok := m.views[key]
	m.mu.Unlock()
	if ok {
		return v
	}
	if m.schema == nil {
		m.schemaErrs.Add(1)
		return &viewEntry{err: errNoSchema}
	}
	def, isView, err := m.schema.View(ctx, db, name)
	if err != nil {
		m.schemaErrs.Add(1)
		return &viewEntry{err: fmt.Errorf("read view %s.%s: %w", db, name, err)}
	}
	v = &viewEntry{ok: isView}
	if isView {
		stmts, err := m.parse(def, 0)
		switch {
		case err != nil:
			v.err = err
		case len(stmts) != 1:
			v.err = fmt.Errorf("parse view %s.%s: %d statements", db, name, len(stmts))
		default:
			v.stmt = stmts[0]
		}
	}
	m.mu.Lock()
	if m.current(epoch) {
		m.views[key] = v
	}
	m.mu.Unlock()
	return v
}
