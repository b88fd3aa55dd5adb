// Package statement owns what sqlwarden knows about one SQL text before it
// runs: its classification (the TiDB parser reading the text as the server
// will run it — executable comments by flavour and version, the session's
// sql_mode — with kinds, tables, functions, routines, WHERE/LIMIT, session
// settings and credential tables), the shape-keyed classification Cache
// (a hit allocates nothing), the facts the proxy acts on (USE and KILL
// targets, LOCAL INFILE, SQL PREPARE/DEALLOCATE, refusals, when to reread
// the session, when to scrub credentials, whether a verdict may be reused),
// the read-only and max_affected_rows judgements, and the Verdict (whose
// typed Action is pkg/record's, the word the journal records). Policy,
// masking and the proxy share its *Statement and Verdict as they are:
// nothing converts them.
//
// It must not import pkg/proxy, pkg/policy, pkg/masking or internal/...:
// they import it. Besides the TiDB parser it imports only pkg/sqltext and
// pkg/record (the journal's vocabulary, standard library only).
package statement
