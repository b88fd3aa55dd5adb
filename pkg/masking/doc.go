// Package masking derives which result columns come from masked source
// columns and rewrites their values in flight. It also owns the `masking:`
// config section (Settings), the hash strategy's key file and the small
// pool of backend connections, over a second MySQL driver, that resolves
// tables and views from information_schema.
//
// It must not import the proxy, policy, identity or the journal engine
// (audit): the daemon's composition root hands it the policy's rules and
// the proxy its plans.
package masking
