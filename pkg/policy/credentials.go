package policy

// RuleCredentials names the built-in decision that refuses statements
// naming a table that holds credentials (statement.Statement's
// CredentialTables). It comes before every rule of the policy file: no
// policy can allow them.
const RuleCredentials = "credential-tables"

// credentialMessage is what a refused client reads.
const credentialMessage = "the statement names a table that holds credentials (mysql.user, mysql.global_priv, mysql.servers, ...): sqlwarden never lets them reach a client"
