//! The command line's suites, one test binary: each module drives the `signet` binary (and the
//! server it starts as a child process) with the independent tools around it — OpenSSL,
//! certbot, pkcs11-tool, curl, promtool, schemathesis, headless Chromium.

mod acme;
mod cli;
mod common;
mod crash;
mod e2e_browser;
mod hostile;
mod operators;
mod repository;
mod retrieval;
