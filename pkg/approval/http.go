package approval

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
)

//go:embed approvals.html
var pageHTML string

var pageTmpl = template.Must(template.New("approvals").Parse(pageHTML))

// DecisionRequest is the body of POST /api/v1/approvals/{id}/approve|deny.
type DecisionRequest struct {
	Reason string `json:"reason,omitempty"`
	// Approver names who decided when the credential cannot (a shared static
	// token); an OIDC-authenticated approver's own name always wins.
	Approver string `json:"approver,omitempty"`
}

// PendingList is the body of GET /api/v1/approvals.
type PendingList struct {
	// Approvals are the requests waiting for a decision, oldest first.
	Approvals []Pending `json:"approvals"`
	// Recent are requests no longer waiting that are still kept: decided,
	// timed out, withdrawn, and retry-mode approvals used, expired or
	// still waiting for the client's retry; newest first.
	Recent []Pending `json:"recent"`
}

type apiError struct {
	Error string `json:"error"`
}

// conflict answers a decision that lost to an earlier one.
type conflict struct {
	Error    string `json:"error"`
	Decision Result `json:"decision"`
}

// Handler serves the approval admin API and the approver page:
//
//	GET  /api/v1/approvals                   pending and recent requests (PendingList)
//	POST /api/v1/approvals/{id}/approve      body DecisionRequest → Result
//	POST /api/v1/approvals/{id}/deny         body DecisionRequest → Result
//
// A decision on a request someone decided first answers 409 Conflict with
// their decision; an unknown or ended request 404; a store that cannot be
// reached 503.
//
//	GET  /approvals                          the approver web page
//
// The API needs a credential auth accepts (401 otherwise; nil auth rejects
// everything). The page itself is static: it asks for the token, keeps it
// in the tab's sessionStorage and calls the API with it. Mount the handler
// for "/api/v1/approvals", "/api/v1/approvals/" and "/approvals".
func (a *Broker) Handler(auth Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/approvals", a.authed(auth, func(w http.ResponseWriter, r *http.Request, _ Principal) {
		writeJSON(w, http.StatusOK, PendingList{Approvals: a.Pending(), Recent: a.Recent()})
	}))
	mux.HandleFunc("POST /api/v1/approvals/{id}/{verb}", a.authed(auth, a.serveDecide))
	mux.HandleFunc("GET /approvals", servePage)
	return mux
}

func (a *Broker) authed(auth Authenticator, h func(http.ResponseWriter, *http.Request, Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if auth == nil {
			writeJSON(w, http.StatusUnauthorized, apiError{"no authenticator configured"})
			return
		}
		p, err := auth.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sqlwarden"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"unauthenticated"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, p)
	}
}

func (a *Broker) serveDecide(w http.ResponseWriter, r *http.Request, p Principal) {
	var approve bool
	switch r.PathValue("verb") {
	case "approve":
		approve = true
	case "deny":
	default:
		writeJSON(w, http.StatusNotFound, apiError{"unknown action; want approve or deny"})
		return
	}
	var body DecisionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, apiError{"decode body: " + err.Error()})
		return
	}
	approver := p.Name
	if approver == "" {
		approver = body.Approver
	}
	if approver == "" {
		approver = "admin-" + p.Method
	}
	res, err := a.Decide(r.PathValue("id"), approve, approver, body.Reason)
	switch {
	case errors.Is(err, ErrDecided):
		writeJSON(w, http.StatusConflict, conflict{Error: err.Error(), Decision: res})
		return
	case errors.Is(err, ErrStoreUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

func servePage(w http.ResponseWriter, r *http.Request) {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	nonce := base64.StdEncoding.EncodeToString(b[:])
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	pageTmpl.Execute(w, struct{ Nonce string }{nonce}) //nolint:errcheck // the client went away
}
