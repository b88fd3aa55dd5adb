// Package maskfixture is the masking test fixture shared by the masking
// package's corpus test and the end-to-end tests: the sw_mask schema, the
// secrets it holds, the leak check and the evasion corpus.
//
// It is for tests only and imports only internal/testutil.
package maskfixture
