package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/audit/replay"
)

func newReplayCmd() *cobra.Command {
	var (
		af      auditFlags
		opt     replay.Options
		asJSON  bool
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "replay --session ID --target DSN [--dir DIR] [--force]",
		Short: "Re-execute a recorded session against a test database and compare every outcome; exit 1 on divergence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.Session == "" || opt.Target == "" {
				return fmt.Errorf("replay: --session and --target are required")
			}
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			opt.Dir = acfg.Dir
			rep, err := replay.Run(cmd.Context(), opt)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				for _, r := range rep.Results {
					if r.Verdict == replay.Match && !verbose {
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
			if !rep.OK() {
				return exitCode(1)
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&opt.Session, "session", "", "session id to replay")
	cmd.Flags().StringVar(&opt.Target, "target", "", "test database DSN (go-sql-driver form: user:pass@tcp(host:port)/db)")
	cmd.Flags().BoolVar(&opt.Force, "force", false, "allow replaying against the session's recorded backend")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print details for matching statements too")
	return cmd
}

func oneLineSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}
