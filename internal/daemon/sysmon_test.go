package daemon

import "testing"

// An operator's own schedtrace, wherever it stands in GODEBUG, keeps the
// daemon from adding its own; a longer name that starts the same does not.
func TestGodebugHas(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{"", false},
		{"schedtrace=0", true},
		{"madvdontneed=1,schedtrace=1000", true},
		{"madvdontneed=1, schedtrace=5", true},
		{"schedtraceX=1", false},
		{"scheddetail=1", false},
		{"schedtrace", false},
	} {
		if got := godebugHas(tc.env, "schedtrace"); got != tc.want {
			t.Errorf("godebugHas(%q) = %v, want %v", tc.env, got, tc.want)
		}
	}
}
