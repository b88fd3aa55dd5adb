// Package replay re-executes a recorded session against a test database and compares each outcome.
//
// It imports pkg/audit (to read the journal) and pkg/record, and must not
// import the proxy or the daemon: replay runs offline from the files alone.
package replay
