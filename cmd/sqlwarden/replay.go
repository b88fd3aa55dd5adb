package main

import (
	"encoding/json"
	"fmt"

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
				rep.WriteText(out, verbose)
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
