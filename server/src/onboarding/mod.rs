//! What a newcomer needs from the server's first starts: where to watch,
//! what to paste into OBS, which UDP port to open, and how to make the first
//! admin account.
//!
//! A generated stream key's OBS settings are shown at every start until a
//! publisher first goes live with it ([`marker`]), so a start that failed
//! (a port taken) or scrolled away loses nothing; `tinsel key show` prints
//! them any time. The words are built here ([`message`], pure); `main.rs`
//! prints them.

pub mod marker;
pub mod message;
