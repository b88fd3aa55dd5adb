package statement

import "github.com/sqlwarden/sqlwarden/pkg/record"

// Verdict is the decision on one statement: the policy's (pkg/policy) or
// one the proxy takes itself (a refused text, LOCAL INFILE, a KILL of another
// identity). One type, so the proxy journals and enforces what the policy
// returned without copying it.
type Verdict struct {
	Rule    string        `json:"rule"` // the rule that matched, or "default"
	Action  record.Action `json:"action"`
	Message string        `json:"message,omitempty"`
	// ApprovalMode is how an approve verdict asks: hold | retry (empty: the
	// approver's configured default).
	ApprovalMode string `json:"approval_mode,omitempty"`
}

// ClientMessage is the text a denied client reads in its ERR packet.
func (v Verdict) ClientMessage() string {
	msg := v.Message
	if msg == "" {
		msg = "statement not allowed"
	}
	return "sqlwarden: blocked by rule " + v.Rule + ": " + msg
}

// Session is what a verdict may look at besides the identity and the
// statement: the connection the statement arrived on.
type Session struct {
	ID         string
	DB         string
	User       string // the user name the client typed
	ClientAddr string
	Command    string // COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, ...
}
