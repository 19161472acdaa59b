//! The `aws` provider against moto (server mode, loopback), driven through berth's engine.
//!
//! Start moto with `testbed/aws/up.sh` and load `$BERTH_CACHE/testbed/aws.env` (`make test` does
//! both). Every test uses its own names and removes what it made.

mod proxy;
mod support;

mod already_exists;
mod bad_input;
mod ec2;
mod elasticache;
mod faults;
mod groups;
mod iam;
mod network;
mod rds;
mod recovery;
mod s3;
mod stack;
mod state_backend;
