package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sqlwarden/sqlwarden/internal/daemon"
	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/redirect"
)

// openRedirect opens the pinned redirect state for the CLI verbs, which work
// whether or not the daemon runs: if nothing is pinned yet, the programs are
// loaded, attached and pinned (and stay, fail-closed) as the daemon would.
func openRedirect(cfgPath string) (*redirect.Redirector, *config.Config, error) {
	cfg, err := loadConfigOrDefaults(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	r, err := redirect.OpenPinned(cfg.Redirect.PinDir)
	if err == nil {
		return r, cfg, nil
	}
	rc, cerr := daemon.RedirectConfig(cfg)
	if cerr != nil {
		return nil, nil, cerr
	}
	r, err2 := redirect.Open(rc)
	if err2 != nil {
		return nil, nil, fmt.Errorf("open pinned redirect (%v) or install it: %w", err, err2)
	}
	return r, cfg, nil
}

// loadConfigOrDefaults reads the config file when one is given, else the
// defaults the CLI needs (pin dir, cgroup root, ports).
func loadConfigOrDefaults(cfgPath string) (*config.Config, error) {
	if cfgPath != "" {
		return config.Load(cfgPath)
	}
	return &config.Config{Listen: config.DefaultListen, Redirect: config.Redirect{
		PinDir: config.DefaultPinDir, CgroupRoot: "auto", FailMode: "closed", Ports: []uint16{3306}}}, nil
}

func parsePorts(s string) ([]uint16, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("bad port %q", f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

func newEnrollCmd() *cobra.Command {
	var cfgPath, cgroup, ports, unit string
	cmd := &cobra.Command{
		Use:   "enroll --cgroup PATH [--ports 3306] | --systemd-unit NAME",
		Short: "Redirect MySQL connections of a cgroup (and everything below it) to the proxy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unit != "" {
				p, err := systemdUnitCgroup(unit)
				if err != nil {
					return err
				}
				cgroup = p
			}
			if cgroup == "" {
				return errors.New("enroll: --cgroup or --systemd-unit is required")
			}
			pp, err := parsePorts(ports)
			if err != nil {
				return err
			}
			r, _, err := openRedirect(cfgPath)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := r.Enroll(cgroup, pp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled %s\n", cgroup)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file (for pin_dir and defaults)")
	cmd.Flags().StringVar(&cgroup, "cgroup", "", "cgroup v2 path (absolute, or relative to the cgroup v2 root)")
	cmd.Flags().StringVar(&unit, "systemd-unit", "", "systemd unit whose cgroup to enroll")
	cmd.Flags().StringVar(&ports, "ports", "", "comma-separated destination ports (default from config: 3306)")
	return cmd
}

func newUnenrollCmd() *cobra.Command {
	var cfgPath, cgroup string
	cmd := &cobra.Command{
		Use:   "unenroll --cgroup PATH",
		Short: "Stop redirecting a cgroup's connections",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cgroup == "" {
				return errors.New("unenroll: --cgroup is required")
			}
			r, _, err := openRedirect(cfgPath)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := r.Unenroll(cgroup); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unenrolled %s\n", cgroup)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	cmd.Flags().StringVar(&cgroup, "cgroup", "", "cgroup v2 path")
	return cmd
}

func newStatusCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show enrolled cgroups, the redirect target and counters",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigOrDefaults(cfgPath)
			if err != nil {
				return err
			}
			r, err := redirect.OpenPinned(cfg.Redirect.PinDir)
			if err != nil {
				return fmt.Errorf("no redirect installed at %s: %w", cfg.Redirect.PinDir, err)
			}
			defer r.Close()
			st, err := r.Status()
			if err != nil {
				return err
			}
			return st.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove every pinned program, map and link and the node address",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigOrDefaults(cfgPath)
			if err != nil {
				return err
			}
			var node netip.Addr
			if cfg.Redirect.NodeAddress != "" {
				node, _ = netip.ParseAddr(cfg.Redirect.NodeAddress)
			}
			if err := redirect.Uninstall(cfg.Redirect.PinDir, node); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", cfg.Redirect.PinDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	return cmd
}
