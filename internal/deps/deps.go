//go:build tools

// Package deps pins the project's direct dependencies while packages are being written.
package deps

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/go-mysql-org/go-mysql/mysql"
	_ "github.com/go-mysql-org/go-mysql/server"
	_ "github.com/go-mysql-org/go-mysql/client"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/google/cel-go/cel"
	_ "github.com/nats-io/nats.go"
	_ "github.com/pingcap/tidb/pkg/parser"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "go.yaml.in/yaml/v3"
	_ "github.com/go-jose/go-jose/v4"
)
