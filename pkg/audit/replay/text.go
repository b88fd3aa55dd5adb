package replay

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints a report as `sqlwarden audit replay` shows it: one line
// per statement with the reasons of each divergence (of every statement
// with verbose), then the session's totals.
func (rep *Report) WriteText(out io.Writer, verbose bool) {
	for _, r := range rep.Results {
		if r.Verdict == Match && !verbose {
			fmt.Fprintf(out, "match     #%-4d %s\n", r.StatementID, oneLineSQL(r.SQL))
			continue
		}
		fmt.Fprintf(out, "%-9s #%-4d %s\n", r.Verdict, r.StatementID, oneLineSQL(r.SQL))
		for _, why := range r.Reasons {
			fmt.Fprintf(out, "          - %s\n", why)
		}
	}
	fmt.Fprintf(out, "session %s: %d matched, %d diverged, %d skipped\n", rep.Session, rep.Matched, rep.Diverged, rep.Skipped)
}

func oneLineSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}
