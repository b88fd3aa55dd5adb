// Package policy decides allow, deny or approve for a classified statement
// (pkg/statement) by ordered CEL rules over identity, statement and session,
// reloads its file when it changes, resolves per-identity limits, and
// brokers human approvals.
//
// It must not import pkg/proxy, pkg/masking or internal/...; statements
// and verdicts are pkg/statement's types.
package policy
