package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystemctl puts a systemctl on PATH that checks its arguments and
// answers like `systemctl show --property=ControlGroup --value UNIT`.
func fakeSystemctl(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	body := "#!/bin/sh\n" +
		`[ "$1 $2 $3" = "show --property=ControlGroup --value" ] || { echo "unexpected args: $*" >&2; exit 64; }` + "\n" +
		script + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestSystemdUnitCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, script, unit, want, err string
	}{
		{"running unit", `[ "$4" = "agent.service" ] && echo /system.slice/agent.service`, "agent.service", "/system.slice/agent.service", ""},
		{"trailing whitespace", `printf '/user.slice/x.scope  \n\n'`, "x.scope", "/user.slice/x.scope", ""},
		{"stopped unit", `echo`, "stopped.service", "", "has no control group"},
		{"systemctl fails", `echo "Failed to connect to bus" >&2; exit 1`, "agent.service", "", "systemctl show agent.service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeSystemctl(t, tc.script)
			got, err := systemdUnitCgroup(tc.unit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("systemdUnitCgroup(%q) = %q, %v; want %q", tc.unit, got, err, tc.want)
			}
		})
	}
}

// The enroll verb takes --systemd-unit and refuses to run with neither it
// nor --cgroup.
func TestEnrollNeedsCgroupOrUnit(t *testing.T) {
	cmd := newEnrollCmd()
	if cmd.Flags().Lookup("systemd-unit") == nil {
		t.Fatal("enroll has no --systemd-unit flag")
	}
	cmd.SetArgs(nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--cgroup or --systemd-unit") {
		t.Fatalf("enroll without a target: %v", err)
	}
	// A unit that systemd cannot resolve stops enroll before any BPF state is touched.
	fakeSystemctl(t, `echo`)
	cmd = newEnrollCmd()
	cmd.SetArgs([]string{"--systemd-unit", "gone.service"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "gone.service has no control group") {
		t.Fatalf("enroll of a unit without a cgroup: %v", err)
	}
}
