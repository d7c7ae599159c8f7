//! A single-node Consul-compatible server for local use and tests.
