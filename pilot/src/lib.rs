//! placeholder
pub mod bootstrap;
pub mod config;
pub mod model;
pub mod source;
pub mod translate;
pub mod xds;

#[cfg(test)]
mod testing;
