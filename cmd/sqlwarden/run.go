package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/internal/daemon"
	"github.com/sqlwarden/sqlwarden/pkg/config"
)

func newRunCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the daemon in the foreground (SIGTERM drains, SIGHUP reloads policy)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Returns only when it did not re-execute the binary.
			sysmonErr := daemon.KeepSysmonAwake()
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			if sysmonErr != nil {
				log.Warn("running with the Go runtime's default system monitor", "err", sysmonErr)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			d, err := daemon.New(ctx, cfg, daemon.Options{Log: log, Version: version})
			if err != nil {
				return err
			}
			defer d.Close()
			return d.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "/etc/sqlwarden/config.yaml", "configuration file")
	return cmd
}

func newLogger(level string) *slog.Logger {
	if level == "" {
		level = "info"
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
