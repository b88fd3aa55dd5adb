// Package layout holds the repository's import rules as a test: each
// package's doc.go says what it must not import, and TestImportRules fails
// when an import crosses one of those lines.
//
// It has no code and must not be imported.
package layout
