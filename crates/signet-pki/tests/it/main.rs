//! The X.509 suites, one test binary: attestation chains, key escrow and OCSP, each checked by
//! an independent implementation.

mod attestation;
mod escrow_interop;
mod ocsp_interop;
