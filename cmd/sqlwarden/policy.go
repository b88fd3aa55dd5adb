package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
)

func init() { subcommands = append(subcommands, newPolicyCmd, newApprovalsCmd) }

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check policy files and see how they decide",
	}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyCheckCmd(), newPolicyDefaultCmd())
	return cmd
}

func newPolicyDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print the built-in policy (what runs when no policy file is configured), to start a file from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), policy.DefaultPolicy)
			return err
		},
	}
}

func newPolicyTestCmd() *cobra.Command {
	var o policy.ExplainOptions
	cmd := &cobra.Command{
		Use:   "test [--policy FILE] [--identity NAME] [SQL]",
		Short: "Classify a statement and show which rule decides it, and an identity's limits",
		Long: `Classify SQL with the same parser the proxy uses, run it through the policy
(the built-in default when --policy is not given) and print the classification,
the matching rule and the action. With --identity, also print the limits in
force for that identity and which limits entry set each. Without SQL, print
only the limits (--identity is then required).

Exit status: 0 allow, 1 deny, 2 approve (held for a human), 3 invalid policy or arguments.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sql := ""
			if len(args) == 1 {
				sql = args[0]
			} else if o.Identity == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden: policy test needs SQL, --identity, or both")
				return exitCode(policy.OutcomeInvalid)
			}
			code, err := policy.Explain(cmd.OutOrStdout(), o, sql)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden:", err)
			}
			if code != policy.OutcomeAllow {
				return exitCode(code)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.File, "policy", "", "policy file (default: the built-in policy)")
	f.StringVar(&o.Identity, "identity", "", "identity name the statement comes from")
	f.StringSliceVar(&o.Groups, "group", nil, "identity groups (repeatable)")
	f.StringVar(&o.DB, "db", "", "current database, to qualify table names")
	f.StringVar(&o.User, "user", "", "the user name the client typed (session.user)")
	f.StringVar(&o.Command, "command", "COM_QUERY", "protocol command (session.command)")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	f.StringVar(&o.Server, "server-version", "10.11.0-MariaDB", "the server's version string, as its handshake gives it (decides executable comments)")
	f.StringVar(&o.SQLMode, "sql-mode", "", "the session's sql_mode (ANSI_QUOTES, NO_BACKSLASH_ESCAPES, ... change how the text reads)")
	return cmd
}

func newPolicyCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check that a policy file is valid (exit 3 if not)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := policy.Load(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "sqlwarden:", err)
				return exitCode(policy.OutcomeInvalid)
			}
			p := e.Policy()
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d rules, default %s, %d masking rules, %d limits)\n", args[0], len(p.Rules), p.Default, len(p.Masking), len(p.Limits))
			return nil
		},
	}
}
