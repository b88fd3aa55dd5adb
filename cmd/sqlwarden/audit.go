package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/config"
)

func init() { subcommands = append(subcommands, newAuditCmd, newReplayCmd) }

const defaultAuditDir = "/var/lib/sqlwarden/audit"

// auditFlags are shared by the audit verbs: the journal dir, directly or
// from the daemon's config file.
type auditFlags struct {
	dir     string
	cfgPath string
}

func (f *auditFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "audit journal directory (default: audit.dir from --config, else "+defaultAuditDir+")")
	cmd.Flags().StringVar(&f.cfgPath, "config", "", "daemon configuration file to take audit.dir from")
}

// auditConfig resolves the journal's configuration (dir, key file).
func (f *auditFlags) auditConfig() (audit.Config, error) {
	var acfg audit.Config
	if f.cfgPath != "" {
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return acfg, err
		}
		if cfg.Audit.Kind != 0 {
			if err := cfg.Audit.Decode(&acfg); err != nil {
				return acfg, fmt.Errorf("config audit: %w", err)
			}
		}
		if acfg.Node == "" {
			acfg.Node = cfg.Node
		}
	}
	if f.dir != "" {
		acfg.Dir = f.dir
	}
	if acfg.Dir == "" {
		acfg.Dir = defaultAuditDir
	}
	if acfg.KeyFile == "" {
		acfg.KeyFile = filepath.Join(acfg.Dir, audit.DefaultKeyFileName)
	}
	return acfg, nil
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, search and verify the audit journal",
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditTailCmd(), newAuditSearchCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		af         auditFlags
		pubPath    string
		node       string
		asJSON     bool
		staleAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [--dir DIR] [--pubkey FILE]",
		Short: "Verify the hash chain and signed checkpoints; exit 1 on any tampering, deletion, splice or truncation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			opt := audit.VerifyOptions{Node: node, StaleAfter: staleAfter}
			if pubPath == "" {
				pubPath = acfg.KeyFile + ".pub"
				fmt.Fprintf(cmd.ErrOrStderr(), "note: using the public key next to the journal (%s); pass --pubkey with a copy kept off the node for real assurance\n", pubPath)
			}
			pub, err := audit.ReadPublicKey(pubPath)
			if err != nil {
				return err
			}
			opt.PublicKey = pub
			rep, err := audit.VerifyWith(acfg.Dir, opt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReport(out, rep, acfg.Dir)
			}
			if !rep.OK {
				return exitCode(1)
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&pubPath, "pubkey", "", "ed25519 public key that signs checkpoints (default: <key_file>.pub next to the journal)")
	cmd.Flags().StringVar(&node, "node", "", "node the journal must belong to (default: the node of its first record)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&staleAfter, "stale-after", 0, "report truncation when the last checkpoint is older than this and no clean shutdown follows (default 2 checkpoint intervals + 30s; negative disables)")
	return cmd
}

func printReport(w io.Writer, rep *audit.Report, dir string) {
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

func newAuditTailCmd() *cobra.Command {
	var (
		af     auditFlags
		asJSON bool
		follow bool
		n      int
	)
	cmd := &cobra.Command{
		Use:   "tail [--dir DIR] [--json] [--follow] [-n N]",
		Short: "Print the newest audit records (pretty by default, newest last)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fl := audit.NewFollower(acfg.Dir, 0)
			defer fl.Close()
			var ring [][]byte
			for {
				batch, err := fl.Next(4096, 16<<20)
				if err != nil {
					return err
				}
				if len(batch) == 0 {
					break
				}
				for _, e := range batch {
					if n > 0 && len(ring) == n {
						ring = ring[1:]
					}
					if n != 0 {
						ring = append(ring, e.Line)
					}
				}
			}
			for _, l := range ring {
				printLine(out, l, asJSON)
			}
			if !follow {
				return nil
			}
			// On stderr, so --json output stays records only: from here on
			// every record written is printed.
			fmt.Fprintf(cmd.ErrOrStderr(), "audit tail: following %s after seq %d\n", acfg.Dir, fl.After())
			ctx := cmd.Context()
			for {
				batch, err := fl.Next(4096, 16<<20)
				if err != nil {
					return err
				}
				for _, e := range batch {
					printLine(out, e.Line, asJSON)
				}
				if len(batch) == 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print raw JSON lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are written")
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "number of records to print (-1: all)")
	return cmd
}

func printLine(w io.Writer, line []byte, asJSON bool) {
	if asJSON {
		w.Write(line)
		io.WriteString(w, "\n")
		return
	}
	r, err := audit.DecodeLine(line)
	if err != nil {
		fmt.Fprintf(w, "(undecodable record: %v)\n", err)
		return
	}
	io.WriteString(w, audit.FormatPretty(r)+"\n")
}

func newAuditSearchCmd() *cobra.Command {
	var (
		af           auditFlags
		f            audit.Filter
		since, until string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "search [--identity NAME] [--since T] [--until T] [--status S] [--table T] [--digest D] [--session ID]",
		Short: "Find audit records by identity, time range, status, table, digest or session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			now := time.Now()
			if f.Since, err = parseWhen(since, now); err != nil {
				return err
			}
			if f.Until, err = parseWhen(until, now); err != nil {
				return err
			}
			switch f.Status {
			case "", audit.StatusSuccess, audit.StatusError, audit.StatusBlocked:
			default:
				return fmt.Errorf("search audit: --status must be success, error or blocked")
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			count := 0
			err = audit.Search(acfg.Dir, f, func(r *audit.Record) error {
				count++
				if asJSON {
					return enc.Encode(r)
				}
				_, err := io.WriteString(out, audit.FormatPretty(r)+"\n")
				return err
			})
			if err != nil {
				return err
			}
			if count == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no matching records")
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&f.Identity, "identity", "", "identity name or subject")
	cmd.Flags().StringVar(&f.Session, "session", "", "session id")
	cmd.Flags().StringVar(&f.Event, "event", "", "event (session.start, statement, outcome, ...)")
	cmd.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, or a duration ago like 1h)")
	cmd.Flags().StringVar(&until, "until", "", "up to this time (RFC 3339, or a duration ago)")
	cmd.Flags().StringVar(&f.Status, "status", "", "outcome status: success | error | blocked")
	cmd.Flags().StringVar(&f.Table, "table", "", "table read or written (table or db.table)")
	cmd.Flags().StringVar(&f.Digest, "digest", "", "statement digest")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return cmd
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: want RFC 3339, a date, or a duration like 90m", s)
}
