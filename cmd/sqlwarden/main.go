package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// subcommands lists every verb; each lives in its own file.
var subcommands []func() *cobra.Command

func main() {
	root := &cobra.Command{
		Use:           "sqlwarden",
		Short:         "Audit, guard and mask what AI agents run on MySQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newEnrollCmd(), newUnenrollCmd(), newStatusCmd(), newUninstallCmd(), newVersionCmd())
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	if err := root.Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "sqlwarden:", err)
		os.Exit(1)
	}
}

// exitCode lets a command choose its exit status without printing an error.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	e, ok := err.(exitCode)
	if ok {
		*ec = e
	}
	return ok
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "sqlwarden", version) },
	}
}
