// Package credscrub removes password hashes and authentication strings from
// the text of SHOW GRANTS and SHOW CREATE USER results.
//
// It builds on pkg/wire and pkg/wire/rows and must not import any other
// sqlwarden package: the proxy imports it to scrub results in flight.
package credscrub
