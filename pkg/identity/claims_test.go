package identity

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestLookupClaim(t *testing.T) {
	var claims map[string]any
	json.Unmarshal([]byte(`{
		"sub": "system:serviceaccount:agents:alpha",
		"kubernetes.io": {"namespace": "agents", "pod": {"name": "alpha-0", "uid": "u1"}},
		"a.b": "flat", "a": {"b": "nested"},
		"n": 42, "yes": true, "groups": ["x", 1, "y"]
	}`), &claims)
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"sub", "system:serviceaccount:agents:alpha", true},
		{"kubernetes.io.pod.uid", "u1", true},
		{"kubernetes.io.namespace", "agents", true},
		{"a.b", "flat", true}, // the literal key wins
		{"n", 42.0, true},
		{"kubernetes.io.pod.missing", nil, false},
		{"sub.x", nil, false},
		{"", nil, false},
		{".", nil, false},
	}
	for _, tt := range tests {
		got, ok := LookupClaim(claims, tt.path)
		if ok != tt.ok || got != tt.want && tt.ok {
			t.Errorf("LookupClaim(%q) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	if g := claimStrings(claims["groups"]); !slices.Equal(g, []string{"x", "y"}) {
		t.Errorf("groups %v", g)
	}
	if s := stringClaim(claims, "yes"); s != "true" {
		t.Errorf("bool claim %q", s)
	}
}

func TestIdentityFromClaims(t *testing.T) {
	cfg := (&OIDCConfig{GroupsClaim: "groups", ModelClaim: "agent.model", ToolCallClaim: "agent.tool_call", TraceIDClaim: "traceparent"}).withDefaults()
	var claims map[string]any
	json.Unmarshal([]byte(`{"sub":"s","iss":"i","groups":"solo","agent":{"model":"m1","tool_call":"tc1"},
		"traceparent":"00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01",
		"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`), &claims)
	id, kc, err := identityFromClaims(&cfg, claims)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "s" || id.Model != "m1" || id.ToolCall != "tc1" || id.TraceID != "5bd66ef5095369c7b0d1f8f4bd33716a" ||
		!slices.Equal(id.Groups, []string{"solo"}) || id.Pod.UID != "u" || !kc.present || kc.podUID != "u" || id.Backend != "" {
		t.Fatalf("identity %+v kube %+v", id, kc)
	}
	if _, _, err := identityFromClaims(&cfg, map[string]any{"sub": " "}); err == nil {
		t.Fatal("blank name accepted")
	}
}

// FuzzClaims feeds arbitrary verified-claim payloads through the extraction
// the resolver applies to a token: it must never panic.
func FuzzClaims(f *testing.F) {
	for _, s := range []string{
		`{"sub":"a","groups":["g"],"kubernetes.io":{"pod":{"uid":"u","name":"n"},"namespace":"ns"}}`,
		`{"sub":1,"groups":{"x":1},"kubernetes.io":"x"}`,
		`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":"deep"}}}}}}}}}}`,
		`{"kubernetes.io":{"pod":[1,2]},"model":null}`,
		`[]`, `null`, `{}`,
	} {
		f.Add([]byte(s), "a.b.c.d.e.f.g.h.i.j")
	}
	f.Fuzz(func(t *testing.T, payload []byte, path string) {
		var claims map[string]any
		if json.Unmarshal(payload, &claims) != nil {
			return
		}
		cfg := (&OIDCConfig{NameClaim: path, GroupsClaim: path, ModelClaim: path, ToolCallClaim: "model", TraceIDClaim: path}).withDefaults()
		id, _, err := identityFromClaims(&cfg, claims)
		if err == nil {
			if id.Name == "" || len(id.Model) > maxAttrLen || len(id.TraceID) > maxAttrLen {
				t.Fatalf("identity %+v", id)
			}
			id.Audit()
		}
		LookupClaim(claims, path)
		BackendFor([]BackendRule{{Claims: map[string]string{path: "x"}, Backend: "b"}}, &Identity{Claims: claims})
	})
}
