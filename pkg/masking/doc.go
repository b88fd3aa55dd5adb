// Package masking derives which result columns come from masked source columns and rewrites their values in flight.
package masking
