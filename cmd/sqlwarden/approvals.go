package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/approval"
	"github.com/sqlwarden/sqlwarden/pkg/config"
)

type approvalsOpts struct {
	admin    string
	token    string
	config   string
	reason   string
	approver string
	json     bool
	all      bool
	timeout  time.Duration
}

func newApprovalsCmd() *cobra.Command {
	var o approvalsOpts
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, approve and deny statements held for a human",
		Long: `Talk to a running daemon's admin API.

The address comes from --admin, else $SQLWARDEN_ADMIN_URL, else admin_listen in
--config, else http://127.0.0.1:9309. The bearer token comes from --token, else
$SQLWARDEN_ADMIN_TOKEN, else admin.token / admin.token_file in --config.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.admin, "admin", "", "admin API base URL")
	pf.StringVar(&o.token, "token", "", "admin bearer token (or an approver OIDC ID token)")
	pf.StringVar(&o.config, "config", "", "daemon config file to take the address and token from")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "request timeout")

	list := &cobra.Command{
		Use:   "list",
		Short: "List pending approvals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			pl, err := c.ListAll(ctx)
			if err != nil {
				return err
			}
			if !o.all {
				pl.Recent = nil
			}
			return pl.Write(cmd.OutOrStdout(), o.json)
		},
	}
	list.Flags().BoolVar(&o.json, "json", false, "print JSON")
	list.Flags().BoolVarP(&o.all, "all", "a", false, "also list requests no longer pending (decided, expired, used), newest first")

	decide := func(approve bool) *cobra.Command {
		verb := "deny"
		if approve {
			verb = "approve"
		}
		c := &cobra.Command{
			Use:   verb + " ID",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " a pending statement",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := o.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
				defer cancel()
				res, err := c.Decide(ctx, args[0], approve, approval.DecisionRequest{Reason: o.reason, Approver: o.approver})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s by %s\n", res.ID, res.Status, res.Approver)
				if res.Approved && !res.ValidUntil.IsZero() {
					fmt.Fprintf(cmd.OutOrStdout(), "retry mode: the identical statement runs once when re-sent before %s\n", res.ValidUntil.Local().Format(time.RFC3339))
				}
				return nil
			},
		}
		c.Flags().StringVar(&o.reason, "reason", "", "why (recorded in the audit trail)")
		c.Flags().StringVar(&o.approver, "approver", defaultApprover(), "who decides (an OIDC token's own name wins)")
		return c
	}
	cmd.AddCommand(list, decide(true), decide(false))
	return cmd
}

func defaultApprover() string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// client resolves the admin address and token.
func (o *approvalsOpts) client() (*approval.Client, error) {
	base, token := o.admin, o.token
	if base == "" {
		base = os.Getenv("SQLWARDEN_ADMIN_URL")
	}
	if token == "" {
		token = os.Getenv("SQLWARDEN_ADMIN_TOKEN")
	}
	if o.config != "" && (base == "" || token == "") {
		cfg, err := config.Load(o.config)
		if err != nil {
			return nil, err
		}
		if base == "" && cfg.AdminListen != "" {
			base = cfg.AdminListen
		}
		if token == "" {
			token = cfg.Admin.Token
			if cfg.Admin.TokenFile != "" {
				b, err := os.ReadFile(cfg.Admin.TokenFile)
				if err != nil {
					return nil, fmt.Errorf("read admin token: %w", err)
				}
				token = strings.TrimSpace(string(b))
			}
		}
	}
	if base == "" {
		base = "http://127.0.0.1:9309"
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if token == "" {
		return nil, errors.New("no admin token: use --token, SQLWARDEN_ADMIN_TOKEN or --config")
	}
	return &approval.Client{BaseURL: base, Token: token}, nil
}
