//! One module per subcommand.

pub mod build;
pub mod image;
pub mod ps;
pub mod up;
