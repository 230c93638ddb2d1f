// Package robustness runs a real three-member cairn cluster under
// concurrent client traffic while injecting faults (kill -9, network
// partitions, blackholes, delay, member replacement, damaged write-ahead
// logs), records every request and response, and checks the history: the
// key-value operations must be linearizable against a model of etcd's
// semantics with revisions (porcupine), watches must deliver every
// revision once and in order with correct previous values, also across
// reconnections, and all members must agree on HashKV. README.md describes
// the fault kinds, the short profile go test runs and the long soak.
package robustness
