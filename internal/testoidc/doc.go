// Package testoidc is a real OIDC issuer for tests: discovery and a JWKS
// (one RSA, one EC key) served over loopback TLS, and the tokens tests need
// to sign — valid ones, and the classic forgeries (alg none, HS256 keyed
// with the public key, a key the issuer never published).
//
// It is for tests only and must not import any sqlwarden package.
package testoidc
