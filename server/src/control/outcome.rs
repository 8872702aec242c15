//! What a command did to an outlet, and how the audit log words it (pure).
//!
//! The audit says what the PDU did, as read back after the switch: a command
//! that changed nothing says so, and a flash names the state the tree showed.

use crate::control::OutletState;

/// What a command did, besides the outlet's state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The outlet switched; `was` is `None` when it could not be read first.
    Switched { on: bool, was: Option<bool> },
    /// It already was in the state asked for; the PDU was told again anyway.
    Already { on: bool },
    /// A flash began: the outlet shows `to` for `seconds`, `blinks` times.
    Flashing { to: bool, seconds: u32, blinks: u32 },
    /// The outlet was flashing already; the command joins that flash.
    StillFlashing,
    /// The PDU took the reboot.
    Rebooted,
}

/// The answer to a command that worked.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// As read back from the PDU after the command.
    pub state: OutletState,
    pub change: Change,
}

impl Outcome {
    /// The audit log's result: "switched on (was off)", "already on",
    /// "flashed off for 5 s (read back: off)".
    pub fn describe(&self) -> String {
        let read = read_back(self.state.on);
        match self.change {
            Change::Switched { on, was } => match was {
                Some(was) => format!("switched {} (was {})", word(on), word(was)),
                None => format!("switched {} (was unknown)", word(on)),
            },
            Change::Already { on } => format!("already {}", word(on)),
            Change::Flashing {
                to,
                seconds,
                blinks: 1,
            } => format!("flashed {} for {seconds} s (read back: {read})", word(to)),
            Change::Flashing {
                to,
                seconds,
                blinks,
            } => format!(
                "blinking {} {blinks} times, {seconds} s each (read back: {read})",
                word(to)
            ),
            Change::StillFlashing => format!("already flashing; joined that flash (now {read})"),
            Change::Rebooted => format!("rebooting (read back: {read})"),
        }
    }
}

/// "on" or "off".
pub fn word(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A state read back; `None` is an outlet in the middle of a reboot.
pub fn read_back(on: Option<bool>) -> &'static str {
    match on {
        Some(on) => word(on),
        None => "rebooting",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(on: Option<bool>, change: Change) -> String {
        Outcome {
            state: OutletState {
                name: "tree-lights".into(),
                on,
                simulated: false,
                error: None,
                protected: false,
            },
            change,
        }
        .describe()
    }

    #[test]
    fn the_audit_says_what_the_pdu_did() {
        assert_eq!(
            outcome(
                Some(true),
                Change::Switched {
                    on: true,
                    was: Some(false)
                }
            ),
            "switched on (was off)"
        );
        assert_eq!(
            outcome(
                Some(true),
                Change::Switched {
                    on: true,
                    was: None
                }
            ),
            "switched on (was unknown)"
        );
        assert_eq!(
            outcome(Some(true), Change::Already { on: true }),
            "already on"
        );
        assert_eq!(
            outcome(
                Some(false),
                Change::Flashing {
                    to: false,
                    seconds: 5,
                    blinks: 1
                }
            ),
            "flashed off for 5 s (read back: off)"
        );
        assert_eq!(
            outcome(
                Some(true),
                Change::Flashing {
                    to: true,
                    seconds: 2,
                    blinks: 3
                }
            ),
            "blinking on 3 times, 2 s each (read back: on)"
        );
        assert_eq!(
            outcome(None, Change::Rebooted),
            "rebooting (read back: rebooting)"
        );
    }
}
