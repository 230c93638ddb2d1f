// Package locksmith coordinates reboots across a cluster, as CoreOS'
// locksmith did: a counting semaphore per group, kept as one JSON document in
// the store and changed only by compare-and-swap transactions, and the node
// daemon that takes a slot before it reboots the machine and gives it back
// once the machine is healthy again.
//
// Everything here talks to the store through the public etcd v3 API
// (go.etcd.io/etcd/client/v3) and only through the small interfaces declared
// in this package, which *clientv3.Client satisfies, so it works against a
// real etcd as well. DESIGN.md beside this file gives the key layout and why
// the lease-bound holders stay correct under concurrent writers.
//
// The pieces:
//
//   - Semaphore: one group's semaphore (Lock, Unlock, SetMax, Status), with
//     holders optionally bound to a lease so a dead holder frees its slot.
//   - Window: a reboot window such as "Thu 23:00" plus a length.
//   - Daemon: the node daemon's state machine (strategies reboot, etcd-lock
//     and off), with an injectable clock and injectable reboot, health and
//     need-reboot hooks, persisting its intent across the reboot in a state
//     directory.
//   - ReadEnvFile and Variables: update.conf-style configuration.
//   - NewCollector: Prometheus metrics of holders and slots per group.
package locksmith
