package proxy

import (
	"context"
	"github.com/sqlwarden/sqlwarden/pkg/host"
	"net/netip"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// The proxy declares the small interfaces it needs; the daemon wires the
// implementations (redirect, identity, policy, masking, audit).

// Auditor appends journal records. Append returns once the record is as
// durable as the journal's sync mode promises; an error means the statement
// must not be forwarded. AppendAsync chains a record without waiting for
// its write: for outcomes and session ends, which nothing is held back for.
// Neither keeps r (or slices it points to) after it returns.
type Auditor interface {
	Append(r *record.Record) error
	AppendAsync(r *record.Record) error
}

// Origins finds where a redirected connection was headed and who made it.
type Origins interface {
	Lookup(remote, local netip.AddrPort) (host.Origin, error)
}

// Identity is a verified workload identity, as the proxy needs it.
type Identity struct {
	Name    string
	Backend string // backend name from the config
	Record  *record.Identity
	// Attribute derives model / tool call attribution for a statement from
	// verified claims, pod metadata and the statement's own SQL comment.
	Attribute func(sql string) *record.Attribution
}

// record is the identity as the journal and the policy see it (nil: none).
func (id *Identity) record() *record.Identity {
	if id == nil {
		return nil
	}
	return id.Record
}

// AuthRequest is what an Authenticator sees of a new connection.
type AuthRequest struct {
	Conn      *wire.Conn
	Handshake *wire.HandshakeResponse
	Origin    *host.Origin // nil for explicit (non-redirected) clients
	Workload  *record.Workload
	Remote    netip.AddrPort
}

// Authenticator binds a connection to an identity. It may continue the auth
// exchange on the connection (password verification for explicit clients,
// a token via mysql_clear_password). A *DeniedError refuses with its reason.
type Authenticator interface {
	Authenticate(ctx context.Context, req *AuthRequest) (*Identity, error)
}

// DeniedError is a refusal whose Reason is safe to tell the client.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return "no verified workload identity: " + e.Reason }

// Credential is a backend login.
type Credential struct {
	User, Password string
}

// Policy classifies and decides statements and says which per-identity
// limits apply. Version changes whenever the policy does (hot reload), so
// cached verdicts and resolved limits can be dropped. Classify reads sql as
// a server of dialect d does (flavour, version, sql_mode); the Statement it
// returns may be shared (statement.Cache) and is never modified. Decide
// judges it for identity id (nil: none) on session s.
type Policy interface {
	Classify(sql, db string, d sqltext.Dialect) *statement.Statement
	Decide(id *record.Identity, st *statement.Statement, s statement.Session) statement.Verdict
	// Limits resolves the limits of an identity; the proxy calls it once per
	// session and again after Version changes, never per statement.
	Limits(identity string) record.Limits
	// ReadOnly says why a statement might change something, "" when it
	// provably cannot (the read_only limit), and which tables an admitted
	// one reads (db qualifies unqualified names): views among them must
	// pass too. prepared returns the text of a statement the session
	// prepared with SQL PREPARE (name in lower case).
	ReadOnly(sql string, st *statement.Statement, db string, prepared func(name string) (string, bool)) (string, []statement.TableRef)
	// BoundWrite says how a max_affected_rows limit treats a statement.
	BoundWrite(st *statement.Statement, db string) statement.BoundedWrite
	Version() uint64
}

// Approval is the outcome of a statement that needs a human.
type Approval struct {
	ID       string // the approval request
	Mode     string // hold | retry
	Approved bool
	// Status is approved | denied | timeout | withdrawn, or in retry mode
	// pending (refused now, ID tells the client what to wait for), or
	// unavailable (the approval store cannot be reached: refused).
	Status   string
	Approver string
	Reason   string
	// RetryValid is how long a retry-mode approval stays usable (for the
	// pending message).
	RetryValid string
}

// Approver asks a human about a statement. In hold mode it returns once
// they decide, or when ctx ends (the client went away) with Status
// "withdrawn"; in retry mode it returns at once.
type Approver interface {
	Request(ctx context.Context, ask *ApprovalAsk) (Approval, error)
}

// ApprovalAsk is a statement put to a human: everything that decides what
// it does, for the approver to read and (retry mode) for the approval to
// match only that statement again.
type ApprovalAsk struct {
	Identity  *Identity
	SessionID string
	Statement *statement.Statement
	Command   string          // COM_QUERY, COM_STMT_EXECUTE
	SQL       string          // as the client sent it (a prepared statement's text)
	DB        string          // where its names are read (a prepared statement's database at PREPARE)
	Dialect   sqltext.Dialect // how its text is read
	Params    []record.Param  // of an execution
	Verdict   statement.Verdict
	// Executes is what the server runs when SQL does not say it: the
	// prepared texts an EXECUTE runs.
	Executes string
}

// MaskPlan masks the result sets of one statement.
type MaskPlan interface {
	ResultSet(index int, columns [][]byte) (RowMasker, error)
	Summary() []record.Masked
}

// RowMasker rewrites rows of one result set. Rows whose changed is false are
// forwarded as their original bytes.
type RowMasker interface {
	Text(row, dst []byte) (out []byte, changed bool, err error)
	Binary(row, dst []byte) (out []byte, changed bool, err error)
	ColumnDef(i int, def []byte) []byte
}

// Masker plans masking for a statement; a nil plan means nothing to mask.
// A *MaskDenied error refuses the statement.
type Masker interface {
	Plan(ctx context.Context, id *Identity, db, sql string, st *statement.Statement) (MaskPlan, error)
}

// schemaChanges is a Masker that follows changes of tables and views made
// through the proxy: SchemaChange is called before such a statement is
// forwarded, and what it returns once the reply has been relayed.
type schemaChanges interface {
	SchemaChange() (done func())
}

// stalePlan is a MaskPlan that can tell it was made against a schema that
// has changed since (a prepared statement's, planned at PREPARE).
type stalePlan interface {
	Stale() bool
}

// isStale reports a plan made against tables or views changed since.
func isStale(p MaskPlan) bool {
	sp, ok := p.(stalePlan)
	return ok && sp.Stale()
}

// MaskDenied refuses a statement that would leak a masked column.
type MaskDenied struct{ Rule, Message string }

func (e *MaskDenied) Error() string { return e.Message }

// Observer receives metrics events; every method must be cheap.
type Observer interface {
	ConnOpened()
	ConnClosed(outcome string)
	Statement(kind, status string, total, added time.Duration)
	Bytes(toClient, toBackend int)
	Decision(rule string, action record.Action)
	Masked(n uint64)
	IdentityFailure(reason string)
	// LimitHit counts a per-identity limit firing (limit: the entry's name,
	// kind: the limit's key).
	LimitHit(limit, kind string)
}

type nopObserver struct{}

func (nopObserver) ConnOpened()                                            {}
func (nopObserver) ConnClosed(string)                                      {}
func (nopObserver) Statement(string, string, time.Duration, time.Duration) {}
func (nopObserver) Bytes(int, int)                                         {}
func (nopObserver) Decision(string, record.Action)                         {}
func (nopObserver) Masked(uint64)                                          {}
func (nopObserver) IdentityFailure(string)                                 {}
func (nopObserver) LimitHit(string, string)                                {}
