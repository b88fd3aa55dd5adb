package identity

import (
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func TestAttribute(t *testing.T) {
	const tp = "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01"
	comment := ParseSQLComment("SELECT 1 /*model='comment-model',tool_call='c1',traceparent='" + tp + "'*/")
	pod := map[string]string{PodKeyModel: "pod-model", "app": "x"}
	claimed := &Identity{Model: "claim-model"}

	a := Attribute(claimed, pod, comment)
	want := record.Attribution{
		Model:    &record.Attributed{Value: "claim-model", Source: AttrClaim},
		ToolCall: &record.Attributed{Value: "c1", Source: AttrComment},
		TraceID:  &record.Attributed{Value: "5bd66ef5095369c7b0d1f8f4bd33716a", Source: AttrComment},
	}
	if *a.Model != *want.Model || *a.ToolCall != *want.ToolCall || *a.TraceID != *want.TraceID {
		t.Fatalf("got %+v %+v %+v", a.Model, a.ToolCall, a.TraceID)
	}
	if a := Attribute(&Identity{}, pod, comment); a.Model.Source != AttrPod || a.Model.Value != "pod-model" {
		t.Fatalf("pod should beat comment: %+v", a.Model)
	}
	if a := Attribute(nil, nil, comment); a.Model.Source != AttrComment {
		t.Fatalf("comment only: %+v", a.Model)
	}
	if a := Attribute(nil, nil, nil); a != nil {
		t.Fatalf("nothing: %+v", a)
	}
	// An invalid traceparent is no trace id; a long value is clipped on a rune boundary.
	a = Attribute(nil, nil, map[string]string{"traceparent": "00-zz-yy-01", "model": strings.Repeat("é", 200)})
	if a.TraceID != nil || len(a.Model.Value) > maxAttrLen || !strings.HasPrefix(a.Model.Value, "éé") || strings.ContainsRune(a.Model.Value, '\uFFFD') {
		t.Fatalf("got %+v %q", a.TraceID, a.Model.Value)
	}
	for tp, want := range map[string]string{
		tp: "5bd66ef5095369c7b0d1f8f4bd33716a",
		"00-00000000000000000000000000000000-c532cb4098ac3dd2-01": "",
		"ff-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01": "",
		"00-5BD66EF5095369C7B0D1F8F4BD33716A-c532cb4098ac3dd2-01": "",
		"": "",
	} {
		if got := traceIDFromTraceparent(tp); got != want {
			t.Errorf("traceIDFromTraceparent(%q) = %q", tp, got)
		}
	}
}
