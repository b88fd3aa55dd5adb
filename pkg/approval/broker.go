package approval

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Approval statuses.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusDenied    = "denied"
	StatusTimeout   = "timeout"   // nobody decided within the timeout
	StatusWithdrawn = "withdrawn" // the client went away while waiting
	StatusUsed      = "used"      // a retry-mode approval ran its statement
	StatusExpired   = "expired"   // a retry-mode approval was not used within retry_ttl
	// StatusUnavailable is a request that could not be stored (the shared
	// store is down): the statement is refused.
	StatusUnavailable = "unavailable"
)

// ErrNotPending is returned when deciding an approval that is not (or no
// longer) waiting.
var ErrNotPending = errors.New("approval not pending")

// ErrDecided is returned when deciding an approval someone else decided
// first: a decision is made once.
var ErrDecided = errors.New("approval already decided")

// Config configures the approval broker.
type Config struct {
	// Timeout is how long a request stays pending; default 5 minutes.
	Timeout time.Duration
	// Mode is the default for rules that do not set approval_mode: hold
	// (default) or retry.
	Mode string
	// RetryTTL is how long an approved retry-mode request may be used, and
	// how long a denied one answers retries with its denial; default 15m.
	RetryTTL time.Duration
	// Node names this daemon in requests it creates.
	Node string
	// Store keeps requests and decisions; default a new MemoryStore.
	Store Store
	// KeepEnded is how long an ended request stays listed (and in the
	// store); default 10 minutes.
	KeepEnded time.Duration
	// OpTimeout bounds one store operation; default 3s.
	OpTimeout time.Duration
	// Journal, when set, receives an "approval" record for each decision,
	// expiry and use (each written by the one node whose write won).
	Journal func(*record.Record)
	// WebhookURL, when set, receives a Slack-compatible JSON message for each
	// new request.
	WebhookURL string
	// PageURL is the approver page's public address, linked from webhook
	// messages (e.g. http://node:9309/approvals).
	PageURL string
	// HTTPClient posts webhooks; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Log receives webhook failures and decisions; nil discards.
	Log *slog.Logger

	sweepEvery time.Duration // how often the janitor runs (tests shorten it)
}

// Request is a statement held for a human.
type Request struct {
	ID        string `json:"id"` // assigned by Request
	SessionID string `json:"session_id"`
	Identity  string `json:"identity"`
	SQL       string `json:"sql"`
	// Executes is the statement as the server runs it — comments blanked,
	// executable comments (/*! */, /*M! */) as SQL — when that differs from
	// SQL: what the approver must read.
	Executes string `json:"executes,omitempty"`
	// Command is the protocol command (COM_QUERY, COM_STMT_EXECUTE);
	// SQLMode the sql_mode flags that change how the server reads the text
	// (ANSI_QUOTES, NO_BACKSLASH_ESCAPES, ...), empty for none.
	Command string         `json:"command,omitempty"`
	SQLMode string         `json:"sql_mode,omitempty"`
	Params  []record.Param `json:"params,omitempty"` // of a prepared statement's execution
	Kind    string         `json:"kind,omitempty"`
	Tables  []string       `json:"tables,omitempty"`
	DB      string         `json:"db,omitempty"`
	Rule    string         `json:"rule"`
	Message string         `json:"message,omitempty"`
	Mode    string         `json:"mode"`           // hold | retry; empty: the configured default
	Node    string         `json:"node,omitempty"` // set by Request
	Created time.Time      `json:"created"`        // set by Request
	Expires time.Time      `json:"expires"`        // set by Request
}

// Result is how a request ended, or (retry mode) where it stands.
type Result struct {
	ID       string `json:"id"`
	Approved bool   `json:"approved"`
	Status   string `json:"status"` // approved | denied | timeout | withdrawn | pending | unavailable
	Approver string `json:"approver,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// ValidUntil is when an approved retry-mode request stops being usable.
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// RetryTTL is the configured retry validity (retry mode).
	RetryTTL time.Duration `json:"-"`
}

// Entry is a request and its state as the store keeps it.
type Entry struct {
	Request
	Status     string    `json:"status"`
	Approver   string    `json:"approver,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Decided    time.Time `json:"decided,omitzero"`
	ValidUntil time.Time `json:"valid_until,omitzero"` // approved retry-mode requests
	Ended      time.Time `json:"ended,omitzero"`       // left pending or approved for good
	UsedBy     string    `json:"used_by,omitempty"`    // the session that ran a retry approval

	key string
	rev uint64
}

// Pending is a request as listed to approvers.
type Pending struct {
	Entry
	AgeSeconds float64 `json:"age_seconds"`
}

// Broker stands between connections that need a human and the
// approvers deciding through the admin API, the CLI or the web page. Its
// state lives in a Store: in memory for one daemon, or in a NATS JetStream
// key-value bucket shared by a fleet, where any node lists and decides any
// node's requests and the node holding a statement learns of the decision
// from a watch.
//
// In hold mode the client connection simply idles while its statement
// waits: the proxy neither reads nor writes it. Clients with a read timeout
// shorter than the timeout give up first; the proxy then sees the
// connection close and the request is withdrawn. In retry mode the
// statement is refused at once with the request's id and nothing is held.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	store Store

	mu       sync.Mutex
	entries  map[string]*Entry        // store key → latest known entry
	byID     map[string]string        // request id → store key
	waiters  map[string]chan struct{} // local hold requests, woken on a change
	shutdown bool

	stop    chan struct{}      // closed by Shutdown
	cancel  context.CancelFunc // ends the watch and the janitor
	holding sync.WaitGroup     // local hold requests
	wg      sync.WaitGroup     // webhook posts, janitor
}

// NewBroker returns a broker and starts watching its store.
func NewBroker(cfg Config) *Broker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.RetryTTL <= 0 {
		cfg.RetryTTL = 15 * time.Minute
	}
	if cfg.Mode == "" {
		cfg.Mode = record.ApprovalModeHold
	}
	if cfg.KeepEnded <= 0 {
		cfg.KeepEnded = 10 * time.Minute
	}
	if cfg.sweepEvery <= 0 {
		cfg.sweepEvery = time.Second // how often each node looks for requests to expire or drop
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 3 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Broker{cfg: cfg, log: log, store: cfg.Store, entries: map[string]*Entry{},
		byID: map[string]string{}, waiters: map[string]chan struct{}{}, stop: make(chan struct{}), cancel: cancel}
	a.store.Watch(ctx, a.apply)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.janitor(ctx)
	}()
	return a
}

// Mode returns the default mode.
func (a *Broker) Mode() string { return a.cfg.Mode }

// StoreErr reports why the store is unusable now, or nil.
func (a *Broker) StoreErr() error { return a.store.Err() }

func newID() string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// retryKey is the store key of the retry-mode request for one statement:
// the same identity sending the same SQL bytes (and parameters) to the same
// database.
func retryKey(req *Request) string {
	h := sha256.New()
	// Everything that decides what the statement does: the same bytes under
	// another sql_mode, in another database or with other parameters (the
	// whole values: a long one is hashed, not cut) are another statement.
	for _, s := range []string{req.Identity, req.DB, req.Command, req.SQLMode, req.SQL, req.Executes} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if len(req.Params) > 0 {
		json.NewEncoder(h).Encode(req.Params) //nolint:errcheck // hashing never fails
	}
	return "r." + hex.EncodeToString(h.Sum(nil)[:16])
}

// apply installs a store change in the local view and wakes a local
// request waiting on it.
func (a *Broker) apply(se StoreEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.entries[se.Key]
	if cur != nil && se.Revision <= cur.rev {
		return
	}
	if se.Deleted {
		if cur != nil {
			delete(a.entries, se.Key)
			if a.byID[cur.ID] == se.Key {
				delete(a.byID, cur.ID)
			}
		}
		return
	}
	var e Entry
	if err := json.Unmarshal(se.Value, &e); err != nil || e.ID == "" {
		a.log.Warn("ignoring an unreadable approval entry", "key", se.Key, "err", err)
		return
	}
	e.key, e.rev = se.Key, se.Revision
	if cur != nil && cur.ID != e.ID && a.byID[cur.ID] == se.Key {
		delete(a.byID, cur.ID)
	}
	a.entries[se.Key] = &e
	a.byID[e.ID] = se.Key
	if w := a.waiters[e.ID]; w != nil && e.Status != StatusPending {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// forget drops a key the store no longer has.
func (a *Broker) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.entries[key]; cur != nil {
		delete(a.entries, key)
		if a.byID[cur.ID] == key {
			delete(a.byID, cur.ID)
		}
	}
}

func (a *Broker) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.cfg.OpTimeout)
}

// get reads key's current entry from the store.
func (a *Broker) get(key string) (*Entry, error) {
	ctx, cancel := a.opCtx()
	defer cancel()
	se, err := a.store.Get(ctx, key)
	if errors.Is(err, ErrKeyNotFound) {
		a.forget(key)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	a.apply(se)
	var e Entry
	if err := json.Unmarshal(se.Value, &e); err != nil {
		return nil, fmt.Errorf("decode approval %s: %w", key, err)
	}
	e.key, e.rev = se.Key, se.Revision
	return &e, nil
}

// create stores a new entry under key (the key must be free).
func (a *Broker) create(e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := a.opCtx()
	defer cancel()
	rev, err := a.store.Create(ctx, e.key, b)
	if err != nil {
		return err
	}
	a.apply(StoreEntry{Key: e.key, Value: b, Revision: rev})
	return nil
}

// update replaces e's stored value if it is still at e.rev.
func (a *Broker) update(e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := a.opCtx()
	defer cancel()
	rev, err := a.store.Update(ctx, e.key, b, e.rev)
	if err != nil {
		return err
	}
	e.rev = rev
	a.apply(StoreEntry{Key: e.key, Value: b, Revision: rev})
	return nil
}

// unavailable is the answer when the store cannot take a request.
func unavailable(id string, err error) (Result, error) {
	return Result{ID: id, Status: StatusUnavailable, Reason: err.Error()},
		fmt.Errorf("queue approval: %w: %w", ErrStoreUnavailable, err)
}

func (a *Broker) newEntry(req Request, mode string) *Entry {
	req.ID = newID()
	req.Mode = mode
	req.Node = a.cfg.Node
	req.Created = time.Now().UTC()
	req.Expires = req.Created.Add(a.cfg.Timeout)
	e := &Entry{Request: req, Status: StatusPending}
	if mode == record.ApprovalModeHold {
		e.key = "h." + req.ID
	} else {
		e.key = retryKey(&req)
	}
	return e
}

// Request asks for a human's decision on req. In hold mode (req.Mode, else
// the configured default) it returns once an approver decides, the timeout
// passes, ctx is cancelled (the client disconnected: withdrawn) or the
// broker shuts down (denied). In retry mode it returns at once: approved
// (exactly once per approval), pending with the id to tell the client, or
// denied. The error is non-nil when the request could not be stored; the
// result then has Status unavailable.
func (a *Broker) Request(ctx context.Context, req Request) (Result, error) {
	mode := req.Mode
	if mode == "" {
		mode = a.cfg.Mode
	}
	a.mu.Lock()
	down := a.shutdown
	a.mu.Unlock()
	if down {
		return Result{Status: StatusDenied, Reason: "daemon shutting down"}, nil
	}
	if err := a.store.Err(); err != nil {
		return unavailable("", err)
	}
	if mode == record.ApprovalModeRetry {
		return a.retry(req)
	}
	return a.hold(ctx, req)
}

func (a *Broker) hold(ctx context.Context, req Request) (Result, error) {
	e := a.newEntry(req, record.ApprovalModeHold)
	wake := make(chan struct{}, 1)
	a.mu.Lock()
	if a.shutdown {
		a.mu.Unlock()
		return Result{Status: StatusDenied, Reason: "daemon shutting down"}, nil
	}
	a.waiters[e.ID] = wake
	a.holding.Add(1)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, e.ID)
		a.mu.Unlock()
		a.holding.Done()
	}()
	if err := a.create(e); err != nil {
		return unavailable(e.ID, err)
	}
	log := a.log.With("approval", e.ID, "session", e.SessionID)
	log.Info("approval requested", "identity", e.Identity, "rule", e.Rule, "mode", record.ApprovalModeHold)
	a.notifyAsync(e.Request, log)

	timer := time.NewTimer(time.Until(e.Expires))
	defer timer.Stop()
	for {
		select {
		case <-wake:
			a.mu.Lock()
			cur := a.entries[e.key]
			a.mu.Unlock()
			if cur != nil && cur.ID == e.ID && cur.Status != StatusPending {
				return resultOf(cur), nil
			}
		case <-timer.C:
			return a.end(e.key, e.ID, StatusTimeout, "no decision within "+a.cfg.Timeout.String()), nil
		case <-ctx.Done():
			return a.end(e.key, e.ID, StatusWithdrawn, "client went away"), nil
		case <-a.stop:
			return a.end(e.key, e.ID, StatusDenied, "daemon shutting down"), nil
		}
	}
}

func resultOf(e *Entry) Result {
	return Result{ID: e.ID, Approved: e.Status == StatusApproved || e.Status == StatusUsed, Status: e.Status,
		Approver: e.Approver, Reason: e.Reason, ValidUntil: e.ValidUntil}
}

// end moves a pending request to status unless someone decided it first, in
// which case their decision is the result. When the store cannot be
// written, the request ends here all the same (the statement does not run).
func (a *Broker) end(key, id, status, reason string) Result {
	for range 5 {
		e, err := a.get(key)
		if err != nil || e.ID != id {
			break
		}
		if e.Status != StatusPending {
			return resultOf(e)
		}
		e.Status, e.Reason, e.Ended = status, reason, time.Now().UTC()
		if status == StatusDenied {
			e.Approver = "sqlwarden"
		}
		err = a.update(e)
		if errors.Is(err, ErrRevision) {
			continue
		}
		if err == nil {
			a.log.Info("approval ended", "approval", id, "status", status, "reason", reason)
			a.journal(e)
		}
		break
	}
	return Result{ID: id, Status: status, Reason: reason}
}

// retry answers a retry-mode statement from the request kept for it.
func (a *Broker) retry(req Request) (Result, error) {
	key := retryKey(&req)
	for range 8 {
		cur, err := a.get(key)
		if errors.Is(err, ErrKeyNotFound) {
			e := a.newEntry(req, record.ApprovalModeRetry)
			err := a.create(e)
			if errors.Is(err, ErrKeyExists) {
				continue
			}
			if err != nil {
				return unavailable("", err)
			}
			a.requested(e)
			return a.pendingResult(e), nil
		}
		if err != nil {
			return unavailable("", err)
		}
		now := time.Now()
		switch cur.Status {
		case StatusPending:
			if now.Before(cur.Expires) {
				return a.pendingResult(cur), nil
			}
		case StatusApproved:
			if now.Before(cur.ValidUntil) {
				used := *cur
				used.Status, used.Ended, used.UsedBy = StatusUsed, now.UTC(), req.SessionID
				err := a.update(&used)
				if errors.Is(err, ErrRevision) {
					continue // someone else used it, or it changed: look again
				}
				if err != nil {
					return unavailable(cur.ID, err)
				}
				a.log.Info("approval used", "approval", cur.ID, "session", req.SessionID)
				a.journal(&used)
				return resultOf(&used), nil
			}
		case StatusDenied:
			if now.Before(cur.Decided.Add(a.cfg.RetryTTL)) {
				return resultOf(cur), nil
			}
		}
		// Whatever was kept is over: a fresh request replaces it.
		old := *cur
		e := a.newEntry(req, record.ApprovalModeRetry)
		e.rev = cur.rev
		err = a.update(e)
		if errors.Is(err, ErrRevision) {
			continue
		}
		if err != nil {
			return unavailable("", err)
		}
		switch old.Status {
		case StatusPending:
			old.Status, old.Reason, old.Ended = StatusTimeout, "no decision within "+a.cfg.Timeout.String(), now.UTC()
			a.journal(&old)
		case StatusApproved:
			old.Status, old.Ended = StatusExpired, now.UTC()
			a.journal(&old)
		}
		a.archive(&old)
		a.requested(e)
		return a.pendingResult(e), nil
	}
	return unavailable("", errors.New("request kept changing under concurrent writers"))
}

// archive keeps a replaced retry-mode request listed until KeepEnded
// passes (best effort: the journal has its story either way).
func (a *Broker) archive(old *Entry) {
	if old.Ended.IsZero() {
		old.Ended = time.Now().UTC()
	}
	if time.Since(old.Ended) >= a.cfg.KeepEnded {
		return
	}
	old.key, old.rev = "e."+old.ID, 0
	if err := a.create(old); err != nil && !errors.Is(err, ErrKeyExists) {
		a.log.Debug("archive replaced approval", "approval", old.ID, "err", err)
	}
}

func (a *Broker) pendingResult(e *Entry) Result {
	return Result{ID: e.ID, Status: StatusPending, RetryTTL: a.cfg.RetryTTL}
}

func (a *Broker) requested(e *Entry) {
	log := a.log.With("approval", e.ID, "session", e.SessionID)
	log.Info("approval requested", "identity", e.Identity, "rule", e.Rule, "mode", record.ApprovalModeRetry)
	a.notifyAsync(e.Request, log)
}

// journal writes the "approval" record of e's new state.
func (a *Broker) journal(e *Entry) {
	if a.cfg.Journal == nil {
		return
	}
	a.cfg.Journal(&record.Record{Event: record.EventApproval, SessionID: e.SessionID, Approval: &record.ApprovalInfo{
		ID: e.ID, Status: e.Status, Mode: e.Mode, Identity: e.Identity, Rule: e.Rule, SQL: e.SQL, DB: e.DB,
		Node: e.Node, Approver: e.Approver, Reason: e.Reason, UsedBy: e.UsedBy}})
}

// Decide approves or denies a pending request. A request someone else
// decided first gets ErrDecided (with their decision as the result); an
// unknown, ended or expired one ErrNotPending.
func (a *Broker) Decide(id string, approve bool, approver, reason string) (Result, error) {
	a.mu.Lock()
	key := a.byID[id]
	a.mu.Unlock()
	if key == "" {
		return Result{}, fmt.Errorf("decide approval %s: %w", id, ErrNotPending)
	}
	for range 5 {
		e, err := a.get(key)
		if errors.Is(err, ErrKeyNotFound) || (err == nil && e.ID != id) {
			return Result{}, fmt.Errorf("decide approval %s: %w", id, ErrNotPending)
		}
		if err != nil {
			return Result{}, fmt.Errorf("decide approval %s: %w: %w", id, ErrStoreUnavailable, err)
		}
		if e.Status != StatusPending {
			if e.Decided.IsZero() { // timed out, withdrawn: nobody decided
				return Result{}, fmt.Errorf("decide approval %s: %w: %s", id, ErrNotPending, e.Status)
			}
			return resultOf(e), fmt.Errorf("decide approval %s: %w: %s by %s", id, ErrDecided, e.Status, orDash(e.Approver))
		}
		now := time.Now().UTC()
		if now.After(e.Expires) {
			return Result{}, fmt.Errorf("decide approval %s: %w: expired at %s", id, ErrNotPending, e.Expires.Format(time.RFC3339))
		}
		e.Approver, e.Reason, e.Decided = approver, reason, now
		if approve {
			e.Status = StatusApproved
			if e.Mode == record.ApprovalModeRetry {
				e.ValidUntil = now.Add(a.cfg.RetryTTL)
			} else {
				e.Ended = now
			}
		} else {
			e.Status, e.Ended = StatusDenied, now
		}
		err = a.update(e)
		if errors.Is(err, ErrRevision) {
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("decide approval %s: %w: %w", id, ErrStoreUnavailable, err)
		}
		a.log.Info("approval decided", "approval", id, "status", e.Status, "approver", approver, "reason", reason, "mode", e.Mode)
		a.journal(e)
		return resultOf(e), nil
	}
	return Result{}, fmt.Errorf("decide approval %s: %w: it kept changing", id, ErrDecided)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Pending lists waiting requests of every node sharing the store, oldest
// first.
func (a *Broker) Pending() []Pending {
	return a.list(func(e *Entry) bool { return e.Status == StatusPending })
}

// Recent lists requests that are no longer waiting but still kept: decided,
// expired, used, and approved retry-mode requests not yet used; newest
// first.
func (a *Broker) Recent() []Pending {
	out := a.list(func(e *Entry) bool { return e.Status != StatusPending })
	slices.Reverse(out)
	return out
}

func (a *Broker) list(keep func(*Entry) bool) []Pending {
	now := time.Now()
	a.mu.Lock()
	out := make([]Pending, 0, len(a.entries))
	for _, e := range a.entries {
		if keep(e) {
			out = append(out, Pending{Entry: *e, AgeSeconds: now.Sub(e.Created).Seconds()})
		}
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Pending) int { return x.Created.Compare(y.Created) })
	return out
}

// holdGrace is how long past its expiry a hold request held by another node
// (or by none: a node that died) is left to its holder before any node
// expires it.
const holdGrace = 2 * time.Second

// janitor expires requests nobody decided, unused approvals, and drops
// ended requests once they have been listed for KeepEnded. Every node runs
// one; compare-and-set makes each change happen once.
func (a *Broker) janitor(ctx context.Context) {
	t := time.NewTicker(a.cfg.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.store.Err() != nil {
			continue
		}
		now := time.Now()
		a.mu.Lock()
		var due []Entry
		for _, e := range a.entries {
			if a.waiters[e.ID] != nil {
				continue // its holder here ends it
			}
			if a.dueAt(e).Before(now) {
				due = append(due, *e)
			}
		}
		a.mu.Unlock()
		for i := range due {
			a.tidy(&due[i], now)
		}
	}
}

// dueAt is when the janitor next has something to do with e.
func (a *Broker) dueAt(e *Entry) time.Time {
	switch e.Status {
	case StatusPending:
		if e.Mode == record.ApprovalModeHold {
			return e.Expires.Add(holdGrace)
		}
		return e.Expires
	case StatusApproved:
		if e.Mode == record.ApprovalModeRetry {
			return e.ValidUntil
		}
	case StatusDenied:
		if e.Mode == record.ApprovalModeRetry && strings.HasPrefix(e.key, "r.") {
			return e.Decided.Add(a.cfg.RetryTTL + a.cfg.KeepEnded)
		}
	}
	end := e.Ended
	if end.IsZero() {
		end = e.Decided
	}
	if end.IsZero() {
		end = e.Expires
	}
	return end.Add(a.cfg.KeepEnded)
}

func (a *Broker) tidy(e *Entry, now time.Time) {
	switch {
	case e.Status == StatusPending:
		a.end(e.key, e.ID, StatusTimeout, "no decision within "+a.cfg.Timeout.String())
	case e.Status == StatusApproved && e.Mode == record.ApprovalModeRetry:
		e.Status, e.Ended = StatusExpired, now.UTC()
		e.Reason = "approval not used within " + a.cfg.RetryTTL.String()
		if err := a.update(e); err == nil {
			a.log.Info("approval expired unused", "approval", e.ID)
			a.journal(e)
		}
	default:
		ctx, cancel := a.opCtx()
		err := a.store.Delete(ctx, e.key, e.rev)
		cancel()
		if err == nil {
			a.apply(StoreEntry{Key: e.key, Deleted: true, Revision: e.rev + 1})
		} else if errors.Is(err, ErrRevision) {
			a.get(e.key) //nolint:errcheck // refreshes or forgets the local view
		}
	}
}

// Shutdown ends this node's held requests as denied ("daemon shutting
// down"), refuses new ones, and stops the watch, the janitor and webhook
// retries. The store stays open (its owner closes it).
func (a *Broker) Shutdown() {
	a.mu.Lock()
	if !a.shutdown {
		close(a.stop)
	}
	a.shutdown = true
	a.mu.Unlock()
	a.holding.Wait()
	a.cancel()
	a.wg.Wait()
}

// webhookBackoff is the wait before each retry of a failed notification.
var webhookBackoff = []time.Duration{500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 15 * time.Second}

func (a *Broker) notifyAsync(req Request, log *slog.Logger) {
	if a.cfg.WebhookURL == "" {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.notifyWithRetry(req, log)
	}()
}

// notifyWithRetry posts the notification, retrying with backoff while the
// request is still pending: a webhook hiccup must not leave approvers unaware.
func (a *Broker) notifyWithRetry(req Request, log *slog.Logger) {
	for attempt := 0; ; attempt++ {
		err := a.notify(req)
		if err == nil {
			return
		}
		if attempt == len(webhookBackoff) {
			log.Warn("approval webhook failed; giving up", "err", err, "attempts", attempt+1)
			return
		}
		log.Warn("approval webhook failed; retrying", "err", err, "in", webhookBackoff[attempt])
		select {
		case <-time.After(webhookBackoff[attempt]):
		case <-a.stop:
			return
		}
		a.mu.Lock()
		key := a.byID[req.ID]
		e := a.entries[key]
		pending := e != nil && e.Status == StatusPending
		a.mu.Unlock()
		if !pending {
			return
		}
	}
}

// notify posts a Slack-compatible message about req to the webhook.
func (a *Broker) notify(req Request) error {
	sql := clip(req.SQL)
	text := fmt.Sprintf("sqlwarden: %s wants to run a statement that rule %s holds for approval (id %s)", req.Identity, req.Rule, req.ID)
	detail := fmt.Sprintf("*%s* wants to run (rule *%s*%s):\n```%s```\nid `%s`, expires %s",
		req.Identity, req.Rule, optional(": ", req.Message), sql, req.ID, req.Expires.Format(time.RFC3339))
	if req.Mode == record.ApprovalModeRetry {
		detail += fmt.Sprintf("\nretry mode: the client was refused and re-runs the statement once approved (usable once, for %s)", shortDuration(a.cfg.RetryTTL))
	}
	if req.Node != "" {
		detail += "\nnode: " + req.Node
	}
	if req.Executes != "" {
		detail += "\nthe server runs: ```" + clip(req.Executes) + "```"
	}
	if req.SQLMode != "" {
		detail += "\nsql_mode: " + req.SQLMode
	}
	if len(req.Params) > 0 {
		detail += "\nparameters: " + clip(ParamsText(req.Params))
	}
	if len(req.Tables) > 0 {
		detail += "\ntables: " + strings.Join(req.Tables, ", ")
	}
	if a.cfg.PageURL != "" {
		detail += fmt.Sprintf("\n<%s|Approve or deny> · `sqlwarden approvals approve %s`", a.cfg.PageURL, req.ID)
	} else {
		detail += fmt.Sprintf("\n`sqlwarden approvals approve %s` or `deny %s`", req.ID, req.ID)
	}
	msg := map[string]any{
		"text": text,
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": detail}},
		},
		"approval": map[string]any{"id": req.ID, "mode": req.Mode, "node": req.Node, "identity": req.Identity,
			"rule": req.Rule, "page_url": a.cfg.PageURL, "expires": req.Expires},
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode webhook: %w", err)
	}
	resp, err := a.cfg.HTTPClient.Post(a.cfg.WebhookURL, "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post webhook: status %s", resp.Status)
	}
	return nil
}

// shortDuration prints 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ShortDuration prints a duration the way the retry message does (15m,
// 1h, 90s).
func ShortDuration(d time.Duration) string { return shortDuration(d) }

func optional(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// clip shortens text for a chat message and keeps it inside its code span.
func clip(text string) string {
	if len(text) > 1500 {
		text = text[:1500] + "…"
	}
	return strings.ReplaceAll(text, "```", "'''")
}

// ParamsText is an execution's parameters as an approver reads them: each
// value quoted (NULL for none), a value kept only in part marked with its
// size and the SHA-256 of the whole.
func ParamsText(ps []record.Param) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		switch v := p.Value.(type) {
		case nil:
			b.WriteString("NULL")
		case string:
			b.WriteString(strconv.Quote(v))
			if p.Truncated {
				fmt.Fprintf(&b, " (the first %d of %d bytes; sha256 %s)", len(v), p.Size, p.SHA256)
			}
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}
