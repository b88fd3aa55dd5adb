// Package sqltext reads SQL text the way a MariaDB or MySQL server's lexer
// does — quoted strings and identifiers under the session's sql_mode,
// comments, and executable comments by the server's flavour and version — and
// produces the text a parser that knows none of that must see to judge the
// statement the server will run.
//
// It must not import any sqlwarden package: statement, policy, masking and
// the proxy build on it.
package sqltext
