//! Built-in Connect CA.
