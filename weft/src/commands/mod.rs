//! One module per subcommand: each turns its flags into the libraries'
//! plain configs and runs them.

pub mod agent;
pub mod analyze;
pub mod bootstrap;
pub mod debug_client;
pub mod inject;
pub mod operator;
pub mod proxy_config;
pub mod proxy_status;
pub mod standalone;
pub mod validate;
