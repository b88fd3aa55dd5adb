// Package audit writes, chains, signs, verifies, reads and ships the tamper-evident statement journal.
package audit
