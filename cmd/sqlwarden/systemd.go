package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// systemdUnitCgroup asks systemd for a unit's control group.
func systemdUnitCgroup(unit string) (string, error) {
	out, err := exec.Command("systemctl", "show", "--property=ControlGroup", "--value", unit).Output()
	if err != nil {
		return "", fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	cg := strings.TrimSpace(string(out))
	if cg == "" {
		return "", fmt.Errorf("systemd unit %s has no control group (is it running?)", unit)
	}
	return cg, nil
}
