// Package approval brokers human approvals of statements a policy rule sent
// to a human (action approve): the Broker (hold and retry modes, timeouts,
// the journal's approval records, Slack-compatible webhooks), its Store (in
// memory, or a NATS JetStream key-value bucket shared by a fleet), the admin
// HTTP API and approver page, the Client the CLI uses, and admin
// authentication (static token, OIDC).
//
// It knows a request by its text, identity and rule, not how the rule was
// decided: it must not import policy (the CEL engine), the proxy or the
// journal engine (audit); it writes approval records through a callback
// and takes the record vocabulary from package record. policy and the proxy
// must not import it either: the daemon's composition root connects them.
package approval
