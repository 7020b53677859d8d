//! No code: this crate only asks for dependencies with the features the
//! whole workspace uses (.config/hakari.toml says why).
