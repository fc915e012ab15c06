//! The build pipeline, one module per step (see `build` for the outline).

pub mod build;
pub mod compile;
pub mod edit;
pub mod inspect;
pub mod install;
pub mod lock;
pub mod render;
pub mod resolve;
pub mod scaffold;
pub mod verify;
