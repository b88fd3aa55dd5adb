package identity

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// maxClaimDepth bounds how deep a dotted claim path reaches.
const maxClaimDepth = 8

// LookupClaim returns the claim at a dotted path. Keys may themselves contain
// dots ("kubernetes.io"), so the longest key present at each level wins:
// "kubernetes.io.pod.uid" finds claims["kubernetes.io"]["pod"]["uid"].
func LookupClaim(claims map[string]any, path string) (any, bool) {
	return lookupClaim(claims, path, 0)
}

func lookupClaim(claims map[string]any, path string, depth int) (any, bool) {
	if claims == nil || path == "" || depth > maxClaimDepth {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, true
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '.' {
			continue
		}
		sub, ok := claims[path[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := lookupClaim(sub, path[i+1:], depth+1); ok {
			return v, true
		}
	}
	return nil, false
}

// claimString prints a scalar claim; objects and lists are not names.
func claimString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// claimStrings reads a list of strings, or a single string.
func claimStrings(v any) []string {
	switch t := v.(type) {
	case string:
		if t == "" {
			return nil
		}
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func stringClaim(claims map[string]any, path string) string {
	if path == "" {
		return ""
	}
	v, ok := LookupClaim(claims, path)
	if !ok {
		return ""
	}
	s, _ := claimString(v)
	return s
}

// kubeClaims is the kubernetes.io claim of a service-account token.
type kubeClaims struct {
	present   bool
	namespace string
	podName   string
	podUID    string
	saName    string
}

func kubernetesClaims(claims map[string]any) kubeClaims {
	k, ok := claims["kubernetes.io"].(map[string]any)
	if !ok {
		return kubeClaims{}
	}
	kc := kubeClaims{present: true}
	kc.namespace, _ = k["namespace"].(string)
	if pod, ok := k["pod"].(map[string]any); ok {
		kc.podName, _ = pod["name"].(string)
		kc.podUID, _ = pod["uid"].(string)
	}
	if sa, ok := k["serviceaccount"].(map[string]any); ok {
		kc.saName, _ = sa["name"].(string)
	}
	return kc
}

// identityFromClaims maps verified claims onto an identity as configured.
func identityFromClaims(cfg *OIDCConfig, claims map[string]any) (*Identity, kubeClaims, error) {
	id := &Identity{
		Source:   SourceOIDC,
		Subject:  stringClaim(claims, "sub"),
		Issuer:   stringClaim(claims, "iss"),
		Name:     stringClaim(claims, cfg.NameClaim),
		Claims:   claims,
		Backend:  cfg.Backend,
		Model:    clip(stringClaim(claims, cfg.ModelClaim)),
		ToolCall: clip(stringClaim(claims, cfg.ToolCallClaim)),
		TraceID:  traceIDFromClaim(stringClaim(claims, cfg.TraceIDClaim)),
	}
	if cfg.GroupsClaim != "" {
		if v, ok := LookupClaim(claims, cfg.GroupsClaim); ok {
			id.Groups = claimStrings(v)
		}
	}
	if strings.TrimSpace(id.Name) == "" {
		return nil, kubeClaims{}, fmt.Errorf("map claims: claim %q is empty or missing", cfg.NameClaim)
	}
	kc := kubernetesClaims(claims)
	if kc.present && (kc.podUID != "" || kc.podName != "") {
		id.Pod = &record.Pod{Namespace: kc.namespace, Name: kc.podName, UID: kc.podUID}
	}
	return id, kc, nil
}

// traceIDFromClaim accepts a W3C traceparent or a bare trace id.
func traceIDFromClaim(s string) string {
	if s == "" {
		return ""
	}
	if t := traceIDFromTraceparent(s); t != "" {
		return t
	}
	return clip(s)
}
