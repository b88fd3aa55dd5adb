// Package redirect loads, pins and attaches the eBPF programs that send enrolled workloads' MySQL connections to the sqlwarden proxy, and answers where each redirected connection was going.
package redirect
