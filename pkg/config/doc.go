// Package config reads the daemon's YAML configuration file.
//
// It must not import any sqlwarden package: everything else reads it.
package config
