package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Approval statuses.
const (
	StatusApproved  = "approved"
	StatusDenied    = "denied"
	StatusTimeout   = "timeout"
	StatusWithdrawn = "withdrawn" // the client went away while waiting
)

// ErrNotPending is returned when deciding an approval that is not (or no
// longer) waiting.
var ErrNotPending = errors.New("approval not pending")

// ApprovalConfig configures the approval broker.
type ApprovalConfig struct {
	// Timeout is how long a statement waits for a human; default 5 minutes.
	Timeout time.Duration
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
}

// ApprovalRequest is a statement held for a human.
type ApprovalRequest struct {
	ID        string    `json:"id"` // assigned by Request when empty
	SessionID string    `json:"session_id"`
	Identity  string    `json:"identity"`
	SQL       string    `json:"sql"`
	Kind      string    `json:"kind,omitempty"`
	Tables    []string  `json:"tables,omitempty"`
	DB        string    `json:"db,omitempty"`
	Rule      string    `json:"rule"`
	Message   string    `json:"message,omitempty"`
	Created   time.Time `json:"created"` // set by Request
	Expires   time.Time `json:"expires"` // set by Request
}

// ApprovalResult is how a request ended.
type ApprovalResult struct {
	ID       string `json:"id"`
	Approved bool   `json:"approved"`
	Status   string `json:"status"` // approved | denied | timeout | withdrawn
	Approver string `json:"approver,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Approvals is an in-memory broker between connections waiting for a human
// and the approvers deciding through the admin API, the CLI or the web page.
//
// While a statement waits, its client connection simply idles: the proxy
// neither reads nor writes it, MySQL clients have no protocol-level
// keep-alive to answer, and TCP keep-alive (if enabled) is handled by the
// kernel. Clients with a read timeout shorter than ApprovalConfig.Timeout
// give up first; the proxy then sees the connection close, cancels the
// Request context and the request is withdrawn.
//
// Pending requests live only in memory: Shutdown ends them all as denied,
// so a restart never leaves a client waiting silently.
type Approvals struct {
	cfg ApprovalConfig
	log *slog.Logger

	mu       sync.Mutex
	pending  map[string]*pendingApproval
	shutdown bool
	stop     chan struct{}  // closed by Shutdown: webhook retries give up
	wg       sync.WaitGroup // webhook posts
}

type pendingApproval struct {
	req  ApprovalRequest
	done chan ApprovalResult // buffered 1; written once, by whoever removes it from the map
}

// NewApprovals returns a broker.
func NewApprovals(cfg ApprovalConfig) *Approvals {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Approvals{cfg: cfg, log: log, pending: map[string]*pendingApproval{}, stop: make(chan struct{})}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Request holds req until an approver decides, the timeout passes, ctx is
// cancelled (the client disconnected: withdrawn) or the broker shuts down
// (denied). The error is non-nil only for a request that could not be
// queued (a duplicate ID); every other ending is an ApprovalResult.
func (a *Approvals) Request(ctx context.Context, req ApprovalRequest) (ApprovalResult, error) {
	if req.ID == "" {
		req.ID = newID()
	}
	req.Created = time.Now().UTC()
	req.Expires = req.Created.Add(a.cfg.Timeout)
	p := &pendingApproval{req: req, done: make(chan ApprovalResult, 1)}

	a.mu.Lock()
	if a.shutdown {
		a.mu.Unlock()
		return ApprovalResult{ID: req.ID, Status: StatusDenied, Reason: "daemon shutting down"}, nil
	}
	if _, dup := a.pending[req.ID]; dup {
		a.mu.Unlock()
		return ApprovalResult{}, fmt.Errorf("queue approval %s: duplicate id", req.ID)
	}
	a.pending[req.ID] = p
	a.mu.Unlock()

	log := a.log.With("approval", req.ID, "session", req.SessionID)
	log.Info("approval requested", "identity", req.Identity, "rule", req.Rule)
	if a.cfg.WebhookURL != "" {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.notifyWithRetry(req, log)
		}()
	}

	timer := time.NewTimer(a.cfg.Timeout)
	defer timer.Stop()
	select {
	case res := <-p.done:
		return res, nil
	case <-timer.C:
		return a.finish(p, ApprovalResult{Status: StatusTimeout, Reason: "no decision within " + a.cfg.Timeout.String()}), nil
	case <-ctx.Done():
		return a.finish(p, ApprovalResult{Status: StatusWithdrawn, Reason: "client went away"}), nil
	}
}

// finish ends p with res unless someone else ended it first, in which case
// their result wins.
func (a *Approvals) finish(p *pendingApproval, res ApprovalResult) ApprovalResult {
	a.mu.Lock()
	if a.pending[p.req.ID] == p {
		delete(a.pending, p.req.ID)
		a.mu.Unlock()
		res.ID = p.req.ID
		a.log.Info("approval ended", "approval", res.ID, "status", res.Status, "reason", res.Reason)
		return res
	}
	a.mu.Unlock()
	return <-p.done
}

// Decide approves or denies a pending request.
func (a *Approvals) Decide(id string, approve bool, approver, reason string) (ApprovalResult, error) {
	a.mu.Lock()
	p := a.pending[id]
	if p == nil {
		a.mu.Unlock()
		return ApprovalResult{}, fmt.Errorf("decide approval %s: %w", id, ErrNotPending)
	}
	delete(a.pending, id)
	a.mu.Unlock()
	res := ApprovalResult{ID: id, Approved: approve, Status: StatusDenied, Approver: approver, Reason: reason}
	if approve {
		res.Status = StatusApproved
	}
	a.log.Info("approval decided", "approval", id, "status", res.Status, "approver", approver, "reason", reason)
	p.done <- res
	return res, nil
}

// PendingApproval is a waiting request as listed to approvers.
type PendingApproval struct {
	ApprovalRequest
	AgeSeconds float64 `json:"age_seconds"`
}

// Pending lists waiting requests, oldest first.
func (a *Approvals) Pending() []PendingApproval {
	now := time.Now()
	a.mu.Lock()
	out := make([]PendingApproval, 0, len(a.pending))
	for _, p := range a.pending {
		out = append(out, PendingApproval{ApprovalRequest: p.req, AgeSeconds: now.Sub(p.req.Created).Seconds()})
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y PendingApproval) int { return x.Created.Compare(y.Created) })
	return out
}

// Shutdown ends every pending request as denied ("daemon shutting down")
// and refuses new ones, then waits for webhook posts in flight.
func (a *Approvals) Shutdown() {
	a.mu.Lock()
	if !a.shutdown {
		close(a.stop)
	}
	a.shutdown = true
	ps := a.pending
	a.pending = map[string]*pendingApproval{}
	a.mu.Unlock()
	for id, p := range ps {
		a.log.Info("approval ended", "approval", id, "status", StatusDenied, "reason", "daemon shutting down")
		p.done <- ApprovalResult{ID: id, Status: StatusDenied, Reason: "daemon shutting down"}
	}
	a.wg.Wait()
}

// notify posts a Slack-compatible message about req to the webhook.
// webhookBackoff is the wait before each retry of a failed notification.
var webhookBackoff = []time.Duration{500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 15 * time.Second}

// notifyWithRetry posts the notification, retrying with backoff while the
// request is still pending: a webhook hiccup must not leave approvers unaware.
func (a *Approvals) notifyWithRetry(req ApprovalRequest, log *slog.Logger) {
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
		_, pending := a.pending[req.ID]
		a.mu.Unlock()
		if !pending {
			return
		}
	}
}

func (a *Approvals) notify(req ApprovalRequest) error {
	sql := req.SQL
	if len(sql) > 1500 {
		sql = sql[:1500] + "…"
	}
	sql = strings.ReplaceAll(sql, "```", "'''")
	text := fmt.Sprintf("sqlwarden: %s wants to run a statement that rule %s holds for approval (id %s)", req.Identity, req.Rule, req.ID)
	detail := fmt.Sprintf("*%s* wants to run (rule *%s*%s):\n```%s```\nid `%s`, expires %s",
		req.Identity, req.Rule, optional(": ", req.Message), sql, req.ID, req.Expires.Format(time.RFC3339))
	if len(req.Tables) > 0 {
		detail += "\ntables: " + strings.Join(req.Tables, ", ")
	}
	if a.cfg.PageURL != "" {
		detail += fmt.Sprintf("\n<%s|Approve or deny> · `sqlwarden approvals approve %s`", a.cfg.PageURL, req.ID)
	} else {
		detail += fmt.Sprintf("\n`sqlwarden approvals approve %s` or `deny %s`", req.ID, req.ID)
	}
	body, err := json.Marshal(map[string]any{
		"text": text,
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": detail}},
		},
	})
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

func optional(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
