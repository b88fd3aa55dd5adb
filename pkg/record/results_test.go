package record

import "testing"

func TestResultCollector(t *testing.T) {
	c := Results{Enabled: true, MaxRows: 2, MaxBytes: 100}.NewCollector()
	c.Add([]any{"a", nil, int64(3)})
	c.Add([]any{[]byte("b"), "c", 1.5})
	c.Add([]any{"d"})
	var r Record
	if !c.Apply(&r) || len(r.Results) != 2 || r.Results[1][0] != "b" {
		t.Fatalf("collector: %+v", r.Results)
	}
	off := Results{}.NewCollector()
	off.Add([]any{"x"})
	var r2 Record
	if off.Want() || off.Apply(&r2) || r2.Results != nil {
		t.Fatal("disabled collector kept rows")
	}
}
