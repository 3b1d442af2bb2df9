//! The web front end's suites, one test binary: the portal, the console, the CMC, password
//! reset, the mail relay and the PDF forms, each through `app(state)` or a spawned server on real
//! SQLite (and PostgreSQL where the suite says), with shared helpers for a cookie-keeping
//! client, an SMTP sink and the token stock.

mod browser;
mod cmc;
mod console;
mod forms;
mod mail;
mod mail_common;
mod password_reset;
mod portal;
mod repository;
mod stock_common;
