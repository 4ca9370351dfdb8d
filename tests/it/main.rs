//! Integration tests: the real binary on files in temp dirs and on an S3-compatible server.

mod badinput;
mod bench;
mod cli;
mod dashboard;
mod dimensions;
mod faults;
mod fixture;
mod generated;
mod integrity;
mod policy;
mod privacy;
mod production;
mod s3;
mod scaleout;
mod util;
