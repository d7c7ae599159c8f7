//! Consul Connect conventions: trust domains, SPIFFE IDs, SNI names, intention precedence.
