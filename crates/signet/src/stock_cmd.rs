//! `signet admin token …`: the RA's stock of hardware tokens. `provision` prepares a blank
//! token before it ships — random transport PINs and a never-extractable shipment key made on
//! the token — and records it (the PINs sealed, never printed); the console's "token shipped"
//! step then picks it by serial. `list` shows the stock, `lost` reports a token lost or stolen
//! and revokes what was issued on it, `retire` takes an unshipped token out of service.

use std::path::PathBuf;

use clap::Subcommand;
use signet_authority::stock::{self, Provisioned, TransportPins};
use signet_ra::token_stock::{TokenSerial, TokenStockStore};

use crate::{ServerArgs, cli_actor};

type Error = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub(crate) enum StockCommand {
    /// Provision a blank token into the stock: transport PINs and a shipment key on the token.
    Provision {
        #[command(flatten)]
        server: ServerArgs,
        /// The PKCS#11 module of the token.
        #[arg(long)]
        module: PathBuf,
        /// The slot, when several tokens are inserted.
        #[arg(long)]
        slot: Option<u64>,
        /// The token label written at initialisation.
        #[arg(long, default_value = "Signet ECA token")]
        label: String,
    },
    /// List the stock: every token, its model and where it is.
    List(ServerArgs),
    /// Report a token lost or stolen: revokes every certificate issued for its application.
    Lost {
        #[command(flatten)]
        server: ServerArgs,
        /// The token's serial number.
        #[arg(long, value_parser = |s: &str| TokenSerial::new(s))]
        serial: TokenSerial,
    },
    /// Take a token that never shipped out of service.
    Retire {
        #[command(flatten)]
        server: ServerArgs,
        /// The token's serial number.
        #[arg(long, value_parser = |s: &str| TokenSerial::new(s))]
        serial: TokenSerial,
    },
}

pub(crate) async fn run(command: StockCommand) -> Result<(), Error> {
    match command {
        StockCommand::Provision { server, module, slot, label } => {
            let state = server.state().await?;
            let made = signet_token::stock::provision(&module, slot, &label)?;
            let provisioned = Provisioned {
                serial: made.serial,
                model: made.model,
                manufacturer: made.manufacturer,
                shipment_key: made.shipment_key,
                pins: TransportPins { user: made.user_pin.expose().to_owned(), so: made.so_pin.expose().to_owned() },
            };
            let token = stock::add(&state, provisioned, &cli_actor()).await?;
            println!(
                "Token {} ({} {}) is in stock with its shipment key; its transport PINs are sealed and only its \
                 retrieval receives them.",
                token.serial, token.manufacturer, token.model
            );
        }
        StockCommand::List(server) => {
            let state = server.state().await?;
            let tokens = state.store.stock().await?;
            if tokens.is_empty() {
                println!("The stock is empty: provision tokens with `signet admin token provision`.");
            }
            for t in tokens {
                println!("{}\t{} {}\t{}", t.serial, t.manufacturer, t.model, t.state.describe());
            }
        }
        StockCommand::Lost { server, serial } => {
            let state = server.state().await?;
            let (token, revoked) = stock::report_lost(&state, &serial, &cli_actor()).await?;
            println!("Token {} is recorded lost.", token.serial);
            if revoked.is_empty() {
                println!("No certificate needed revoking.");
            } else {
                println!("Revoked (key compromise): {}", revoked.join(", "));
            }
        }
        StockCommand::Retire { server, serial } => {
            let state = server.state().await?;
            let token = stock::retire(&state, &serial, &cli_actor()).await?;
            println!("Token {} is retired.", token.serial);
        }
    }
    Ok(())
}
