package identity

import (
	"maps"
	"slices"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Identity sources, as recorded in the audit.
const (
	SourceOIDC   = "oidc"
	SourceStatic = "static"
)

// Request is what the proxy knows about a connection when it asks who it is.
type Request struct {
	PID uint32 // connecting process (host pid namespace); 0 if unknown
	// StartTime is the process start time (field 22 of /proc/PID/stat, clock
	// ticks since boot) as seen at connect time; 0 means read it now. A
	// differing value means the pid was reused and the request is refused.
	StartTime   uint64
	CgroupID    uint64 // cgroup v2 id of the connecting socket; 0 if unknown
	CgroupPath  string // cgroup v2 path relative to the hierarchy root, if the proxy resolved it
	NetnsCookie uint64
	ClientUser  string // what the client typed as user name; recorded, never trusted
	// PasswordToken is the cleartext password of a mysql_clear_password
	// login, tried as a token only when allow_password_token is set and TLS.
	PasswordToken string
	TLS           bool
}

// Identity is a verified workload identity. Resolve returns a fresh copy of
// the struct each time, but Claims, Groups and Pod.Labels are shared with its
// cache: treat them as read-only.
type Identity struct {
	Name    string
	Source  string // oidc | static
	Subject string
	Issuer  string
	Groups  []string
	Claims  map[string]any // the token's verified claims (nil for static)
	Backend string         // from rules, else the oidc/static default; "" = the daemon's default
	Expiry  time.Time      // zero for static identities
	Pod     *record.Pod

	// Model, ToolCall and TraceID come from the claims named by model_claim,
	// tool_call_claim and trace_id_claim; verified, so Attribute trusts them
	// above pod metadata and SQL comments.
	Model    string
	ToolCall string
	TraceID  string
}

// Audit returns the identity as the audit records it.
func (i *Identity) Audit() *record.Identity {
	if i == nil {
		return nil
	}
	a := &record.Identity{
		Name:    i.Name,
		Source:  i.Source,
		Subject: i.Subject,
		Issuer:  i.Issuer,
		Groups:  slices.Clone(i.Groups),
		Claims:  maps.Clone(i.Claims),
	}
	if i.Pod != nil {
		p := *i.Pod
		p.Labels = maps.Clone(i.Pod.Labels)
		a.Pod = &p
	}
	return a
}

// DeniedError says why a connection has no verified identity. Reason is
// stable and safe to show the client; Err carries detail for the log.
type DeniedError struct {
	Reason string
	Err    error
}

func (e *DeniedError) Error() string { return "no verified workload identity: " + e.Reason }

func (e *DeniedError) Unwrap() error { return e.Err }

// Reasons a connection is refused. Users see and grep these; keep them stable.
const (
	ReasonExpired            = "token expired"
	ReasonNotYetValid        = "token not yet valid"
	ReasonNoExpiry           = "token has no expiry"
	ReasonWrongAudience      = "wrong audience"
	ReasonWrongIssuer        = "wrong issuer"
	ReasonSignatureInvalid   = "signature invalid"
	ReasonUnknownKey         = "unknown signing key"
	ReasonKeysUnavailable    = "issuer keys unavailable"
	ReasonMalformed          = "token malformed"
	ReasonInvalid            = "token invalid"
	ReasonOtherPod           = "token belongs to another pod"
	ReasonNoPodClaim         = "token names no pod"
	ReasonTokenMissing       = "token file missing"
	ReasonTokenUnreadable    = "token file unreadable"
	ReasonProcessGone        = "process gone"
	ReasonNoProcess          = "no workload process"
	ReasonPodBoundNoWorkload = "pod-bound token without a workload process"
	ReasonCgroupChanged      = "workload changed cgroup"
	ReasonNoIdentity         = "no identity configured for this workload"
	ReasonTokenNeedsTLS      = "token as password needs TLS"
	ReasonEmptyName          = "token has no name claim"
)

// reasonUnsupportedAlg is "unsupported algorithm <alg>".
func reasonUnsupportedAlg(alg string) string { return "unsupported algorithm " + alg }

func deny(reason string, err error) *DeniedError { return &DeniedError{Reason: reason, Err: err} }
