package policy

// RuleCredentials names the built-in decision that refuses statements
// naming a table that holds credentials (statement.Statement's
// CredentialTables). It comes before every rule of the policy file: no
// policy can allow them.
const RuleCredentials = "credential-tables"

// credentialMessage is what a refused client reads.
const credentialMessage = "the statement names a table that holds credentials (mysql.user, mysql.global_priv, mysql.servers, ...): sqlwarden never lets them reach a client"

// RulePasswords names the built-in decision that refuses statements that
// set a password or an authentication method (statement.Statement's
// SetsPassword), before every rule of the policy file: a password set
// through sqlwarden is known to the agent that sent it — the daemon's own
// account's, too (SET PASSWORD without FOR) — and a way around sqlwarden.
const RulePasswords = "password-changes"

const passwordMessage = "the statement sets a password or how an account authenticates: passwords are never set through sqlwarden (whoever sent one would know it)"
