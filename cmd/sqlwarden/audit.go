package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/audit/sink"
	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func init() { subcommands = append(subcommands, newAuditCmd, newReplayCmd) }

// auditFlags are shared by the audit verbs: the journal dir, directly or
// from the daemon's config file.
type auditFlags struct {
	dir     string
	cfgPath string
}

func (f *auditFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "audit journal directory (default: audit.dir from --config, else "+audit.DefaultDir+")")
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
		acfg.Dir = audit.DefaultDir
	}
	if acfg.KeyFile == "" {
		acfg.KeyFile = filepath.Join(acfg.Dir, audit.DefaultKeyFileName)
	}
	return acfg, nil
}

// natsFlags point the audit verbs at the stream the nats sink writes.
type natsFlags struct {
	src sink.NATSSource
}

func (n *natsFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&n.src.URL, "nats", "", "read the fleet's records from this NATS server's JetStream stream instead of a local journal")
	cmd.Flags().StringVar(&n.src.Stream, "stream", sink.DefaultStream, "JetStream stream the nats sink writes")
	cmd.Flags().StringVar(&n.src.SubjectPrefix, "subject-prefix", "sqlwarden.audit", "subject prefix of the nats sink (records of node N are on PREFIX.N)")
	cmd.Flags().StringVar(&n.src.CredsFile, "nats-creds", "", "NATS user credentials file")
	cmd.Flags().BoolVar(&n.src.TLS.Enabled, "nats-tls", false, "connect to NATS with TLS")
	cmd.Flags().StringVar(&n.src.TLS.CAFile, "nats-ca", "", "CA file for NATS TLS")
}

func (n *natsFlags) on() bool { return n.src.URL != "" }

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
		nf         natsFlags
		pubPath    string
		node       string
		asJSON     bool
		staleAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [--dir DIR] [--pubkey FILE] [--nats URL --stream NAME --node NODE]",
		Short: "Verify the hash chain and signed checkpoints; exit 1 on any tampering, deletion, splice or truncation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			opt := audit.VerifyOptions{Node: node, StaleAfter: staleAfter}
			if nf.on() && node == "" {
				return errors.New("verify audit: --nats needs --node (whose records to verify)")
			}
			if nf.on() && af.dir == "" && pubPath == "" {
				return errors.New("verify audit: from the stream alone (no --dir), --pubkey is required")
			}
			if pubPath == "" {
				pubPath = acfg.KeyFile + ".pub"
				fmt.Fprintf(cmd.ErrOrStderr(), "note: using the public key next to the journal (%s); pass --pubkey with a copy kept off the node for real assurance\n", pubPath)
			}
			pub, err := audit.ReadPublicKey(pubPath)
			if err != nil {
				return err
			}
			opt.PublicKey = pub
			dir := acfg.Dir
			var rep *audit.Report
			if nf.on() {
				rep, dir, err = sink.VerifyAgainstStream(cmd.Context(), nf.src, af.dir, opt)
			} else {
				rep, err = audit.VerifyWith(acfg.Dir, opt)
			}
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
				audit.WriteReport(out, rep, dir)
			}
			if !rep.OK {
				return exitCode(1)
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&pubPath, "pubkey", "", "ed25519 public key that signs checkpoints (default: <key_file>.pub next to the journal)")
	cmd.Flags().StringVar(&node, "node", "", "node the journal must belong to (default: the node of its first record; required with --nats)")
	nf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&staleAfter, "stale-after", 0, "report truncation when the last checkpoint is older than this and no clean shutdown follows (default 2 checkpoint intervals + 30s; negative disables)")
	return cmd
}

func newAuditTailCmd() *cobra.Command {
	var (
		af       auditFlags
		nf       natsFlags
		tailNode string
		asJSON   bool
		follow   bool
		n        int
	)
	cmd := &cobra.Command{
		Use:   "tail [--dir DIR | --nats URL [--stream NAME] [--node N]] [--json] [--follow] [-n N]",
		Short: "Print the newest audit records (pretty by default, newest last)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			o := audit.TailOptions{N: n, JSON: asJSON, Follow: follow, Notice: cmd.ErrOrStderr()}
			if nf.on() {
				return sink.TailNATS(cmd.Context(), cmd.OutOrStdout(), nf.src, tailNode, o)
			}
			return audit.Tail(cmd.Context(), cmd.OutOrStdout(), acfg.Dir, o)
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print raw JSON lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are written")
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "number of records to print (-1: all)")
	cmd.Flags().StringVar(&tailNode, "node", "", "with --nats: only this node's records")
	nf.register(cmd)
	return cmd
}

func newAuditSearchCmd() *cobra.Command {
	var (
		af           auditFlags
		nf           natsFlags
		f            audit.Filter
		since, until string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "search [--identity NAME] [--since T] [--until T] [--status S] [--table T] [--digest D] [--session ID] [--node N] [--nats URL]",
		Short: "Find audit records by identity, time range, status, table, digest or session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acfg, err := af.auditConfig()
			if err != nil {
				return err
			}
			now := time.Now()
			if f.Since, err = audit.ParseWhen(since, now); err != nil {
				return err
			}
			if f.Until, err = audit.ParseWhen(until, now); err != nil {
				return err
			}
			switch f.Status {
			case "", record.StatusSuccess, record.StatusError, record.StatusBlocked:
			default:
				return fmt.Errorf("search audit: --status must be success, error or blocked")
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			count := 0
			search := func(fn func(*record.Record) error) error { return audit.Search(acfg.Dir, f, fn) }
			if nf.on() {
				search = func(fn func(*record.Record) error) error { return sink.SearchNATS(cmd.Context(), nf.src, f, fn) }
			}
			err = search(func(r *record.Record) error {
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
	cmd.Flags().StringVar(&f.Node, "node", "", "node that wrote the record")
	nf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return cmd
}
