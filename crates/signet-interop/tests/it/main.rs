//! The interop suites, one test binary: a running Signet CA checked by OpenSSL, curl and pkilint;
//! its database going away under load; several nodes on one PostgreSQL database.

mod ca;
mod common;
mod db_outage;
mod multinode;
