package identity

import (
	"strings"
	"unicode/utf8"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Attribution sources, from most to least trusted.
const (
	AttrClaim   = "claim"   // a verified token claim
	AttrPod     = "pod"     // a label or annotation of the workload's pod
	AttrComment = "comment" // a sqlcommenter comment: the agent's own word
)

// Pod labels and annotations read for attribution.
const (
	PodKeyModel    = "sqlwarden.io/model"
	PodKeyToolCall = "sqlwarden.io/tool-call"
	PodKeyTraceID  = "sqlwarden.io/trace-id"
)

// sqlcommenter keys read for attribution.
const (
	CommentKeyModel       = "model"
	CommentKeyToolCall    = "tool_call"
	CommentKeyTraceparent = "traceparent"
)

// maxAttrLen bounds an attributed value in the audit.
const maxAttrLen = 256

// Attribute ties a statement to a model, a tool call and a trace, each taken
// from the most trusted source that has it: verified claim, then pod
// metadata, then the statement's SQL comment. It returns nil if none does.
func Attribute(id *Identity, podLabels map[string]string, comment map[string]string) *record.Attribution {
	var model, tool, trace string
	if id != nil {
		model, tool, trace = id.Model, id.ToolCall, id.TraceID
	}
	m := pick(model, podLabels[PodKeyModel], comment[CommentKeyModel])
	tc := pick(tool, podLabels[PodKeyToolCall], comment[CommentKeyToolCall])
	tr := pick(trace, traceIDFromClaim(podLabels[PodKeyTraceID]), traceIDFromTraceparent(comment[CommentKeyTraceparent]))
	if m == nil && tc == nil && tr == nil {
		// Nothing to attribute (the common case): no allocation.
		return nil
	}
	return &record.Attribution{Model: m, ToolCall: tc, TraceID: tr}
}

func pick(claim, pod, comment string) *record.Attributed {
	for _, c := range []struct{ v, src string }{{claim, AttrClaim}, {pod, AttrPod}, {comment, AttrComment}} {
		if v := strings.TrimSpace(c.v); v != "" {
			return &record.Attributed{Value: clip(v), Source: c.src}
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) <= maxAttrLen {
		return s
	}
	cut := maxAttrLen
	for cut > 0 && !utf8.RuneStart(s[cut]) { // do not split a rune
		cut--
	}
	return s[:cut]
}

// traceIDFromTraceparent returns the trace id of a W3C traceparent
// (version-traceid-parentid-flags), or "" if it is not one.
func traceIDFromTraceparent(tp string) string {
	tp = strings.TrimSpace(tp)
	if tp == "" {
		return ""
	}
	parts := strings.Split(tp, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" ||
		len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return ""
	}
	for _, p := range parts[:4] {
		if !isLowerHex(p) {
			return ""
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return ""
	}
	return parts[1]
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
