//! Interop tests only (see `tests/`): a running Signet CA checked by independent
//! implementations — OpenSSL's `verify`, `ocsp` and `crl`, curl, and pkilint. Holds no code.
