// Package credscrub removes password hashes and authentication strings from
// the text of SHOW GRANTS and SHOW CREATE USER results.
package credscrub
