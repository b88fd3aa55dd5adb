package approval

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Write prints the list as `sqlwarden approvals list` shows it: a table,
// or JSON (the pending approvals alone when Recent is nil).
func (pl PendingList) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if pl.Recent == nil {
			return enc.Encode(pl.Approvals)
		}
		return enc.Encode(pl)
	}
	ps := append(pl.Approvals, pl.Recent...)
	if len(ps) == 0 {
		fmt.Fprintln(w, "no pending approvals")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tMODE\tAGE\tNODE\tIDENTITY\tSESSION\tRULE\tTABLES\tSQL")
	for _, p := range ps {
		sql := strings.Join(strings.Fields(p.SQL), " ")
		if len(sql) > 80 {
			sql = sql[:77] + "..."
		}
		tables := strings.Join(p.Tables, ",")
		if tables == "" {
			tables = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, statusText(p), orDash(p.Mode),
			time.Duration(p.AgeSeconds*float64(time.Second)).Round(time.Second), orDash(p.Node), p.Identity, p.SessionID, p.Rule, tables, sql)
	}
	return tw.Flush()
}

// statusText says where a request stands, with who decided and until when
// an approved retry-mode request can be used.
func statusText(p Pending) string {
	switch {
	case p.Status == StatusApproved && p.Mode == record.ApprovalModeRetry:
		return fmt.Sprintf("approved by %s, awaiting retry until %s", orDash(p.Approver), p.ValidUntil.Local().Format(time.TimeOnly))
	case p.Approver != "" && p.Status != StatusPending:
		return p.Status + " by " + p.Approver
	case p.Status == "":
		return StatusPending
	}
	return p.Status
}
