//! Config sources: where mesh resources come from. Each turns what it reads
//! into [`crate::config::Input`]s for the [`crate::config::ConfigStore`].

pub mod debounce;
pub mod files;
