//! Typed Consul HTTP API client: TLS, tokens, blocking queries, retries.
