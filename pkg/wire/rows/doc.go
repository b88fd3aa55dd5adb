// Package rows rewrites the values of selected columns in MySQL text and
// binary result-row packets, one packet at a time, streaming: a row no
// editor changes comes back as itself without allocating.
//
// It owns the walk over a row: the Editor interface a masker implements, and
// EachText, which hands a text row's values to the result digest;
// every byte it reads (length-encoded strings, binary values, column
// definitions) is decoded by pkg/wire. It imports pkg/wire and must not
// import any other sqlwarden package (masking, credscrub and the proxy
// import it).
package rows
