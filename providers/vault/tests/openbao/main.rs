//! The vault provider against a real OpenBao dev server and a real MariaDB (start both with
//! `testbed/vault/up.sh`; `make test` does). Every test uses its own names and removes what it
//! made.

mod database;
mod kubernetes;
mod kv;
mod policy;
mod recovery;
mod secrets;
mod settings;
mod support;
