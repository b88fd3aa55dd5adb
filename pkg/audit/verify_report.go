package audit

import (
	"fmt"
	"io"
	"time"
)

// WriteReport prints a verification report of the journal at dir (or the
// stream it names) as `sqlwarden audit verify` shows it.
func WriteReport(w io.Writer, rep *Report, dir string) {
	status := "OK"
	if !rep.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "journal %s (node %s): %s\n", dir, rep.Node, status)
	fmt.Fprintf(w, "  %d segments, %d records (seq %d..%d), %d checkpoints\n", rep.Segments, rep.Records, rep.FirstSeq, rep.LastSeq, rep.Checkpoints)
	if cp := rep.LastCheckpoint; cp != nil {
		kind := "checkpoint"
		if cp.Final {
			kind = "final checkpoint (clean shutdown)"
		}
		signed := "signature verified"
		if !cp.Signed {
			signed = "signature NOT verified"
		}
		fmt.Fprintf(w, "  last %s: seq %d at %s, %s; %d records after it\n", kind, cp.Seq, cp.TS.Format(time.RFC3339), signed, rep.Unprotected)
	}
	if p, ok := rep.First(); ok {
		fmt.Fprintf(w, "  first bad record: %s\n", p)
	}
	for _, p := range rep.Problems[min(1, len(rep.Problems)):] {
		fmt.Fprintf(w, "  also: %s\n", p)
	}
	for _, p := range rep.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", p)
	}
}
