//! The PKCS#11 suites, one test binary: each module drives a part of `signet-token` on a
//! SoftHSM2 token, checked by OpenSSL and pkcs11-tool.

mod common;
mod escrow;
mod interop;
mod signer;
mod stock;
mod subscriber;
