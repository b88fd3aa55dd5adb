// Package rows decodes and rewrites MySQL column definitions and text and binary result-row packets, one packet at a time.
package rows
