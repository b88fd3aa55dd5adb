package statement

// Action is what a verdict does with a statement. It is a string so that a
// policy file, a journal record and a metric label carry the same word.
type Action string

// The actions a policy rule, its default or the proxy's own checks take.
const (
	Allow   Action = "allow"
	Deny    Action = "deny"
	Approve Action = "approve" // a human decides (hold or retry)
)

// Valid reports whether a is one of the actions above.
func (a Action) Valid() bool { return a == Allow || a == Deny || a == Approve }

// Verdict is the decision on one statement: the policy's (pkg/policy) or
// one the proxy takes itself (a refused text, LOCAL INFILE, a KILL of another
// identity). One type, so the proxy journals and enforces what the policy
// returned without copying it.
type Verdict struct {
	Rule    string `json:"rule"` // the rule that matched, or "default"
	Action  Action `json:"action"`
	Message string `json:"message,omitempty"`
	// ApprovalMode is how an Approve verdict asks: hold | retry (empty: the
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
