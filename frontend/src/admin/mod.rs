//! The admin panel at `/admin`.

pub mod api;
