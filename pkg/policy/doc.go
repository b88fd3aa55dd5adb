// Package policy classifies SQL statements, decides allow, deny or approve by ordered CEL rules, and brokers human approvals.
package policy
