//! Integration tests of the Consul client against a fake Consul on a real socket.

#![allow(clippy::unwrap_used)]

mod acl;
mod agent;
mod catalog;
mod config_entry;
mod connect;
mod errors;
mod health;
mod kv;
mod retry;
mod status;
mod support;
mod tls;
mod token;
mod watch;
