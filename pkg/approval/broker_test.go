package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

const testToken = "s3cret-token"

// startAdmin serves the approvals handler on 127.0.0.1.
func startAdmin(t *testing.T, a *Broker, auth Authenticator) *Client {
	t.Helper()
	srv := httptest.NewServer(a.Handler(auth))
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, Token: testToken, HTTP: srv.Client()}
}

type result struct {
	res Result
	err error
}

// request runs a.Request in the background.
func request(ctx context.Context, a *Broker, req Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		res, err := a.Request(ctx, req)
		ch <- result{res, err}
	}()
	return ch
}

// waitPending waits until n requests are pending and returns them.
func waitPending(t *testing.T, a *Broker, n int) []Pending {
	t.Helper()
	var p []Pending
	testutil.Eventually(t, 5*time.Second, func() error {
		if p = a.Pending(); len(p) != n {
			return fmt.Errorf("pending = %d, want %d", len(p), n)
		}
		return nil
	})
	return p
}

func wait(t *testing.T, ch <-chan result) Result {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.res
	case <-time.After(5 * time.Second):
		t.Fatal("Request did not return")
	}
	return Result{}
}

func sampleRequest() Request {
	return Request{SessionID: "s1", Identity: "agent-1", SQL: "ALTER TABLE shop.users ADD COLUMN x INT", Tables: []string{"shop.users"}, Rule: "ddl-needs-a-human", DB: "shop"}
}

func TestApproveViaAPI(t *testing.T) {
	a := NewBroker(Config{Timeout: time.Minute})
	c := startAdmin(t, a, StaticToken(testToken))
	ch := request(context.Background(), a, sampleRequest())
	waitPending(t, a, 1)

	list, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Identity != "agent-1" || list[0].SQL != sampleRequest().SQL || list[0].Tables[0] != "shop.users" || list[0].ID == "" {
		t.Fatalf("List = %+v", list)
	}
	res, err := c.Decide(context.Background(), list[0].ID, true, DecisionRequest{Reason: "planned migration", Approver: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusApproved {
		t.Errorf("API result = %+v", res)
	}
	got := wait(t, ch)
	if !got.Approved || got.Status != StatusApproved || got.Approver != "alice" || got.Reason != "planned migration" || got.ID != list[0].ID {
		t.Errorf("Request result = %+v", got)
	}
	// A second decision loses to the first: a conflict naming the winner.
	if _, err := c.Decide(context.Background(), list[0].ID, false, DecisionRequest{}); err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "approved by alice") {
		t.Errorf("second decision: %v", err)
	}
}

func TestDenyViaAPI(t *testing.T) {
	a := NewBroker(Config{Timeout: time.Minute})
	c := startAdmin(t, a, StaticToken(testToken))
	ch := request(context.Background(), a, sampleRequest())
	p := waitPending(t, a, 1)
	if _, err := c.Decide(context.Background(), p[0].ID, false, DecisionRequest{Reason: "not today"}); err != nil {
		t.Fatal(err)
	}
	got := wait(t, ch)
	if got.Approved || got.Status != StatusDenied || got.Reason != "not today" || got.Approver != "admin-token" {
		t.Errorf("Request result = %+v", got)
	}
}

func TestApprovalTimeout(t *testing.T) {
	a := NewBroker(Config{Timeout: 50 * time.Millisecond})
	got := wait(t, request(context.Background(), a, sampleRequest()))
	if got.Approved || got.Status != StatusTimeout {
		t.Errorf("Request result = %+v", got)
	}
	if n := len(a.Pending()); n != 0 {
		t.Errorf("%d still pending", n)
	}
}

func TestApprovalWithdrawn(t *testing.T) {
	a := NewBroker(Config{Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	ch := request(ctx, a, sampleRequest())
	p := waitPending(t, a, 1)
	cancel() // the client disconnected
	got := wait(t, ch)
	if got.Approved || got.Status != StatusWithdrawn {
		t.Errorf("Request result = %+v", got)
	}
	if _, err := a.Decide(p[0].ID, true, "bob", ""); !errors.Is(err, ErrNotPending) {
		t.Errorf("Decide after withdrawal: %v", err)
	}
}

func TestApprovalShutdown(t *testing.T) {
	a := NewBroker(Config{Timeout: time.Minute})
	ch1 := request(context.Background(), a, sampleRequest())
	ch2 := request(context.Background(), a, sampleRequest())
	waitPending(t, a, 2)
	a.Shutdown()
	for _, ch := range []<-chan result{ch1, ch2} {
		got := wait(t, ch)
		if got.Approved || got.Status != StatusDenied || got.Reason != "daemon shutting down" {
			t.Errorf("Request result = %+v", got)
		}
	}
	// After shutdown new requests are denied at once.
	got := wait(t, request(context.Background(), a, sampleRequest()))
	if got.Status != StatusDenied {
		t.Errorf("Request after Shutdown = %+v", got)
	}
}

func TestApprovalRaces(t *testing.T) {
	// Decisions, timeouts and withdrawals racing each other: every Request
	// returns exactly one result and nothing leaks.
	a := NewBroker(Config{Timeout: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%25)*time.Millisecond)
		ch := request(ctx, a, sampleRequest())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			for _, p := range a.Pending() {
				a.Decide(p.ID, i%2 == 0, "racer", "") //nolint:errcheck
			}
			r := <-ch
			if r.err != nil || r.res.Status == "" {
				t.Errorf("result %+v", r)
			}
		}()
	}
	wg.Wait()
	if n := len(a.Pending()); n != 0 {
		t.Errorf("%d still pending", n)
	}
}

func TestAPIAuth(t *testing.T) {
	a := NewBroker(Config{Timeout: time.Minute})
	srv := httptest.NewServer(a.Handler(StaticToken(testToken)))
	defer srv.Close()
	ch := request(context.Background(), a, sampleRequest())
	p := waitPending(t, a, 1)
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/api/v1/approvals", "", http.StatusUnauthorized},
		{"GET", "/api/v1/approvals", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/approvals", "Basic " + testToken, http.StatusUnauthorized},
		{"POST", "/api/v1/approvals/" + p[0].ID + "/approve", "", http.StatusUnauthorized},
		{"POST", "/api/v1/approvals/" + p[0].ID + "/approve", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/approvals", "Bearer " + testToken, http.StatusOK},
		{"POST", "/api/v1/approvals/" + p[0].ID + "/maybe", "Bearer " + testToken, http.StatusNotFound},
		{"POST", "/api/v1/approvals/nope/approve", "Bearer " + testToken, http.StatusNotFound},
		{"DELETE", "/api/v1/approvals", "Bearer " + testToken, http.StatusMethodNotAllowed},
		{"GET", "/approvals", "", http.StatusOK}, // the page is static; its data needs the token
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (%q) = %d, want %d: %s", tc.method, tc.path, tc.auth, resp.StatusCode, tc.want, body)
		}
	}
	if len(a.Pending()) != 1 {
		t.Error("an unauthenticated request decided the approval")
	}
	// An empty static token and a nil authenticator accept nothing.
	for name, auth := range map[string]Authenticator{"empty token": StaticToken(""), "nil": nil} {
		srv := httptest.NewServer(a.Handler(auth))
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/approvals", nil)
		req.Header.Set("Authorization", "Bearer ")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
		srv.Close()
	}
	a.Shutdown()
	wait(t, ch)
}

func TestWebhook(t *testing.T) {
	got := make(chan map[string]any, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m) //nolint:errcheck
		got <- m
	}))
	defer hook.Close()
	a := NewBroker(Config{Timeout: time.Minute, WebhookURL: hook.URL, PageURL: "http://127.0.0.1:9309/approvals"})
	ch := request(context.Background(), a, sampleRequest())
	var m map[string]any
	select {
	case m = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook")
	}
	text, _ := m["text"].(string)
	blocks, _ := m["blocks"].([]any)
	if !strings.Contains(text, "agent-1") || len(blocks) != 1 {
		t.Errorf("webhook body = %v", m)
	}
	b, _ := json.Marshal(blocks)
	if !strings.Contains(string(b), "ALTER TABLE shop.users") || !strings.Contains(string(b), "/approvals") {
		t.Errorf("webhook blocks = %s", b)
	}
	a.Shutdown()
	wait(t, ch)
}

func TestWebhookRetried(t *testing.T) {
	saved := webhookBackoff
	webhookBackoff = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	defer func() { webhookBackoff = saved }()
	var calls atomic.Int32
	delivered := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		close(delivered)
	}))
	defer hook.Close()
	a := NewBroker(Config{Timeout: time.Minute, WebhookURL: hook.URL})
	ch := request(context.Background(), a, sampleRequest())
	select {
	case <-delivered:
	case <-time.After(5 * time.Second):
		t.Fatalf("webhook not delivered after failures (%d calls)", calls.Load())
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("webhook calls = %d, want 3 (two failures, then success)", n)
	}
	a.Shutdown()
	wait(t, ch)
}

// TestRetryModeExactlyOnce: a retry-mode request is answered at once; after
// approval, of many identical retries racing, exactly one is approved, and
// the next one opens a new request.
func TestRetryModeExactlyOnce(t *testing.T) {
	var mu sync.Mutex
	var events []string
	a := NewBroker(Config{Timeout: time.Minute, RetryTTL: time.Minute, Mode: record.ApprovalModeRetry,
		Journal: func(r *record.Record) { mu.Lock(); events = append(events, r.Approval.Status); mu.Unlock() }})
	defer a.Shutdown()
	req := sampleRequest()
	res, err := a.Request(context.Background(), req)
	if err != nil || res.Status != StatusPending || res.ID == "" || res.RetryTTL != time.Minute {
		t.Fatalf("first ask = %+v, %v", res, err)
	}
	again, _ := a.Request(context.Background(), req)
	if again.ID != res.ID || again.Status != StatusPending {
		t.Fatalf("second ask = %+v", again)
	}
	// Whatever decides what the statement does makes another request: the
	// same text in another database, under another sql_mode, through another
	// command, with other parameters — a long one told apart by all of it,
	// not by the part the journal keeps.
	long := []record.Param{{Type: "VAR_STRING", Value: "1,2", Truncated: true, Size: 5000, SHA256: "aa"}}
	for name, change := range map[string]func(r *Request){
		"parameters":       func(r *Request) { r.Params = []record.Param{{Type: "LONG", Value: int64(2)}} },
		"database":         func(r *Request) { r.DB = "other" },
		"sql_mode":         func(r *Request) { r.SQLMode = "ANSI_QUOTES" },
		"command":          func(r *Request) { r.Command = "COM_STMT_EXECUTE" },
		"server's reading": func(r *Request) { r.Executes = r.SQL + " , DROP COLUMN x" },
		"a long parameter": func(r *Request) { r.Params = long },
	} {
		other := req
		change(&other)
		if o, _ := a.Request(context.Background(), other); o.ID == res.ID {
			t.Fatalf("a request with other %s shares the first one's id", name)
		}
	}
	first := req
	first.Params = long
	second := req
	second.Params = []record.Param{long[0]}
	second.Params[0].SHA256 = "bb" // the same first bytes, another value
	if f, sec := mustRequest(t, a, first), mustRequest(t, a, second); f.ID == sec.ID {
		t.Fatal("two long parameters that differ only past the kept part share a request")
	}
	if _, err := a.Decide(res.ID, true, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var approved atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := a.Request(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			if r.Approved {
				approved.Add(1)
				if r.ID != res.ID || r.Approver != "alice" {
					t.Errorf("approved result %+v", r)
				}
			}
		}()
	}
	wg.Wait()
	if approved.Load() != 1 {
		t.Fatalf("%d retries approved, want 1", approved.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ",") != "approved,used" {
		t.Fatalf("journal: %v", events)
	}
}

// TestRetryModeDeniedAndExpiry: a denied request answers retries with the
// denial; a pending one expires on its own (the janitor) and an unused
// approval too.
func TestRetryModeDeniedAndExpiry(t *testing.T) {
	a := NewBroker(Config{Timeout: 100 * time.Millisecond, RetryTTL: 150 * time.Millisecond, Mode: record.ApprovalModeRetry, sweepEvery: 10 * time.Millisecond})
	defer a.Shutdown()
	req := sampleRequest()
	res, _ := a.Request(context.Background(), req)
	if _, err := a.Decide(res.ID, false, "bob", "no"); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Request(context.Background(), req); r.Status != StatusDenied || r.Approver != "bob" || r.Reason != "no" || r.ID != res.ID {
		t.Fatalf("retry of denied = %+v", r)
	}
	// Pending, nobody decides: timeout.
	req2 := req
	req2.SQL = "ALTER TABLE shop.users ADD COLUMN y INT"
	p, _ := a.Request(context.Background(), req2)
	waitStatus(t, a, p.ID, StatusTimeout)
	if _, err := a.Decide(p.ID, true, "x", ""); !errors.Is(err, ErrNotPending) {
		t.Fatalf("deciding an expired request: %v", err)
	}
	// Approved, never used: expired.
	p2, _ := a.Request(context.Background(), req2)
	if p2.ID == p.ID || p2.Status != StatusPending {
		t.Fatalf("ask after expiry = %+v", p2)
	}
	if _, err := a.Decide(p2.ID, true, "x", ""); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, p2.ID, StatusExpired)
	if r, _ := a.Request(context.Background(), req2); r.Approved {
		t.Fatalf("an expired approval was used: %+v", r)
	}
}

func mustRequest(t *testing.T, a *Broker, req Request) Result {
	t.Helper()
	r, err := a.Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitStatus(t *testing.T, a *Broker, id, status string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		recent := a.Recent()
		for _, p := range recent {
			if p.ID == id && p.Status == status {
				return nil
			}
		}
		return fmt.Errorf("request %s never %s; recent %+v", id, status, recent)
	})
}

// TestStoreUnavailable: a store that cannot be reached refuses requests
// with ErrStoreUnavailable (the proxy's "approval store unavailable").
func TestStoreUnavailable(t *testing.T) {
	a := NewBroker(Config{Store: downStore{NewMemoryStore()}})
	defer a.Shutdown()
	for _, mode := range []string{record.ApprovalModeHold, record.ApprovalModeRetry} {
		req := sampleRequest()
		req.Mode = mode
		res, err := a.Request(context.Background(), req)
		if !errors.Is(err, ErrStoreUnavailable) || res.Status != StatusUnavailable || res.Approved {
			t.Fatalf("%s: %+v %v", mode, res, err)
		}
	}
}

type downStore struct{ *MemoryStore }

func (downStore) Err() error { return errors.New("nats: connection closed") }
