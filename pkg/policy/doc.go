// Package policy decides allow, deny or approve for a classified statement
// (pkg/statement) by ordered CEL rules over identity, statement and session,
// reloads its file when it changes, and resolves per-identity limits.
//
// What happens to a statement a rule sends for approval is pkg/approval's
// business. policy must not import pkg/approval, pkg/audit, the NATS client,
// pkg/proxy, pkg/masking or internal/...; statements and verdicts are
// pkg/statement's types, approval modes pkg/record's.
package policy
