// Package e2e tests real cairn serve processes through real clients:
// clientv3, the official etcdctl and curl-shaped HTTP requests. Members are
// started with tests/framework; nothing here is mocked.
package e2e
