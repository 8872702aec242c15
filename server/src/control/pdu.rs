//! PDUs: what OIDs and values switch an outlet ([`Model`], pure), and the
//! backends that do it ([`Pdu`]: SNMP, or the simulated PDU).
//!
//! APC's PowerNet MIB: `sPDUOutletCtl` (1.3.6.1.4.1.318.1.1.4.4.2.1.3.N) reads
//! `outletOn(1)`, `outletOff(2)` or, while it reboots, `outletReboot(3)`, and
//! writing 1, 2 or 3 acts on outlet N. The generic model takes the column OID
//! and the values from the config.

use snmp2::Oid;

use crate::control::settings::{PduConfig, PduKind};
use crate::control::snmp::{SnmpClient, SnmpError};
use crate::control::store::Store;

/// `sPDUOutletCtl` in APC's PowerNet MIB.
pub const APC_OUTLET_CTL: &str = "1.3.6.1.4.1.318.1.1.4.4.2.1.3";

/// Where and how a PDU model switches outlets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Written to switch; the outlet index is appended.
    set_column: Vec<u64>,
    /// Read for the state; the outlet index is appended.
    state_column: Vec<u64>,
    on_value: i64,
    off_value: i64,
    /// Written to switch off and on again, and read while that happens;
    /// `None` for a model that cannot.
    reboot_value: Option<i64>,
}

/// What an outlet's state value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    On,
    Off,
    /// In the middle of a reboot: it comes back on by itself.
    Rebooting,
    /// A value the model does not know.
    Unknown,
}

impl Model {
    pub fn apc() -> Self {
        let column = parse_oid(APC_OUTLET_CTL).expect("the APC OID is well formed");
        Self {
            set_column: column.clone(),
            state_column: column,
            on_value: 1,
            off_value: 2,
            reboot_value: Some(3),
        }
    }

    /// # Errors
    /// An OID that is not dotted numbers, as a config message.
    pub fn generic(
        outlet_oid: &str,
        state_oid: Option<&str>,
        on_value: i64,
        off_value: i64,
        reboot_value: Option<i64>,
    ) -> Result<Self, String> {
        let parse = |key: &str, text: &str| {
            parse_oid(text)
                .ok_or_else(|| format!("{key} {text:?} is not an OID like {APC_OUTLET_CTL}"))
        };
        let set_column = parse("outlet_oid", outlet_oid)?;
        let state_column = match state_oid {
            Some(text) => parse("state_oid", text)?,
            None => set_column.clone(),
        };
        Ok(Self {
            set_column,
            state_column,
            on_value,
            off_value,
            reboot_value,
        })
    }

    /// The OID and value that switch outlet `index` on or off.
    pub fn set_request(&self, index: u32, on: bool) -> (Vec<u64>, i64) {
        let value = if on { self.on_value } else { self.off_value };
        (with_index(&self.set_column, index), value)
    }

    /// The OID that tells outlet `index`'s state.
    pub fn state_oid(&self, index: u32) -> Vec<u64> {
        with_index(&self.state_column, index)
    }

    /// The OID and value that reboot outlet `index`, if the model can.
    pub fn reboot_request(&self, index: u32) -> Option<(Vec<u64>, i64)> {
        self.reboot_value
            .map(|value| (with_index(&self.set_column, index), value))
    }

    /// What a state value read back means.
    pub fn state_of(&self, value: i64) -> Reading {
        if value == self.on_value {
            Reading::On
        } else if value == self.off_value {
            Reading::Off
        } else if Some(value) == self.reboot_value {
            Reading::Rebooting
        } else {
            Reading::Unknown
        }
    }
}

fn with_index(column: &[u64], index: u32) -> Vec<u64> {
    let mut oid = column.to_vec();
    oid.push(u64::from(index));
    oid
}

/// Dotted numbers, at least two arcs, the first 0 to 2 and the second below
/// 40 (as BER requires and `snmp2`'s `Oid` checks).
pub fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let text = text.strip_prefix('.').unwrap_or(text);
    let arcs: Vec<u64> = text
        .split('.')
        .map(|arc| {
            if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                arc.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let valid = arcs.len() >= 2 && arcs[0] <= 2 && arcs[1] < 40;
    valid.then_some(arcs)
}

/// Dotted form of an OID, for messages.
pub fn format_oid(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Why a PDU could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error(transparent)]
    Snmp(#[from] SnmpError),
    #[error(
        "PDU {pdu} reported value {value} for outlet {index} ({oid}), which is neither on nor off"
    )]
    UnknownValue {
        pdu: String,
        index: u32,
        oid: String,
        value: i64,
    },
    #[error(
        "PDU {pdu} cannot reboot an outlet: for a generic model set reboot_value in its [[pdu]] table, or switch the outlet off and on"
    )]
    CannotReboot { pdu: String },
    #[error("cannot keep the simulated outlet's state: {0}")]
    Store(#[from] sqlx::Error),
}

/// A PDU the controller can switch.
pub enum Pdu {
    Snmp {
        name: String,
        /// Boxed: the SNMP target is much larger than the simulated variant.
        client: Box<SnmpClient>,
        model: Model,
    },
    /// Outlets that exist only in the database, for trying things out.
    Simulated { name: String, store: Store },
}

impl Pdu {
    pub fn new(config: &PduConfig, store: Store) -> Self {
        match &config.kind {
            PduKind::Snmp { target, model } => Pdu::Snmp {
                name: config.name.clone(),
                client: Box::new(SnmpClient::new(&config.name, (**target).clone())),
                model: model.clone(),
            },
            PduKind::Simulated => Pdu::Simulated {
                name: config.name.clone(),
                store,
            },
        }
    }

    pub fn simulated(&self) -> bool {
        matches!(self, Pdu::Simulated { .. })
    }

    /// Switches outlet `index`.
    ///
    /// # Errors
    /// The PDU did not answer or refused.
    pub async fn set(&self, index: u32, on: bool) -> Result<(), PduError> {
        match self {
            Pdu::Snmp { client, model, .. } => {
                let (oid, value) = model.set_request(index, on);
                client.set(&to_oid(&oid), value).await?;
                Ok(())
            }
            Pdu::Simulated { name, store } => {
                store.set_simulated(name, index, on).await?;
                Ok(())
            }
        }
    }

    /// Reboots outlet `index`: off, and on again after the PDU's own delay.
    /// The simulated PDU has no delay: its outlet is simply on.
    ///
    /// # Errors
    /// The model cannot reboot, or the PDU did not answer or refused.
    pub async fn reboot(&self, index: u32) -> Result<(), PduError> {
        match self {
            Pdu::Snmp {
                name,
                client,
                model,
            } => {
                let (oid, value) = model
                    .reboot_request(index)
                    .ok_or_else(|| PduError::CannotReboot { pdu: name.clone() })?;
                client.set(&to_oid(&oid), value).await?;
                Ok(())
            }
            Pdu::Simulated { .. } => self.set(index, true).await,
        }
    }

    /// Reads the state of the outlets `indexes`, in that order, in one
    /// request: on, off, or `None` while rebooting.
    ///
    /// # Errors
    /// The PDU did not answer, or answered something that is not a state.
    pub async fn read(&self, indexes: &[u32]) -> Result<Vec<Option<bool>>, PduError> {
        match self {
            Pdu::Snmp {
                name,
                client,
                model,
            } => {
                let arcs: Vec<Vec<u64>> = indexes.iter().map(|&i| model.state_oid(i)).collect();
                let oids: Vec<Oid<'static>> = arcs.iter().map(|a| to_oid(a)).collect();
                let values = client.get(&oids).await?;
                indexes
                    .iter()
                    .zip(values)
                    .zip(&arcs)
                    .map(|((&index, value), oid)| match model.state_of(value) {
                        Reading::On => Ok(Some(true)),
                        Reading::Off => Ok(Some(false)),
                        Reading::Rebooting => Ok(None),
                        Reading::Unknown => Err(PduError::UnknownValue {
                            pdu: name.clone(),
                            index,
                            oid: format_oid(oid),
                            value,
                        }),
                    })
                    .collect()
            }
            Pdu::Simulated { name, store } => {
                let stored = store.simulated(name).await?;
                Ok(indexes
                    .iter()
                    .map(|i| Some(stored.get(i).copied().unwrap_or(false)))
                    .collect())
            }
        }
    }
}

fn to_oid(arcs: &[u64]) -> Oid<'static> {
    // parse_oid() checked the first two arcs, which is all BER encoding needs.
    Oid::from(arcs).expect("a checked OID encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apc_outlet_oids_and_values() {
        let apc = Model::apc();
        let (oid, value) = apc.set_request(3, true);
        assert_eq!(format_oid(&oid), "1.3.6.1.4.1.318.1.1.4.4.2.1.3.3");
        assert_eq!(value, 1);
        assert_eq!(apc.set_request(3, false).1, 2);
        assert_eq!(
            format_oid(&apc.state_oid(8)),
            "1.3.6.1.4.1.318.1.1.4.4.2.1.3.8"
        );
        assert_eq!(apc.state_of(1), Reading::On);
        assert_eq!(apc.state_of(2), Reading::Off);
        assert_eq!(apc.state_of(3), Reading::Rebooting);
        assert_eq!(apc.state_of(7), Reading::Unknown);
        assert_eq!(
            apc.reboot_request(3)
                .map(|(oid, value)| (format_oid(&oid), value)),
            Some(("1.3.6.1.4.1.318.1.1.4.4.2.1.3.3".to_string(), 3))
        );
    }

    #[test]
    fn generic_model_from_config() {
        let m = Model::generic(
            ".1.3.6.1.4.1.9999.2",
            Some("1.3.6.1.4.1.9999.3"),
            10,
            20,
            None,
        )
        .unwrap();
        assert_eq!(
            m.set_request(2, true),
            (parse_oid("1.3.6.1.4.1.9999.2.2").unwrap(), 10)
        );
        assert_eq!(m.set_request(2, false).1, 20);
        assert_eq!(format_oid(&m.state_oid(2)), "1.3.6.1.4.1.9999.3.2");
        assert_eq!(m.state_of(20), Reading::Off);
        assert_eq!(m.state_of(0), Reading::Unknown);
        assert_eq!(m.reboot_request(2), None, "no reboot_value, no reboot");
        let err = Model::generic("1.3..6", None, 1, 2, None).unwrap_err();
        assert_eq!(
            err,
            format!("outlet_oid \"1.3..6\" is not an OID like {APC_OUTLET_CTL}")
        );
    }

    #[test]
    fn oids_parse_strictly() {
        assert_eq!(parse_oid("1.3.6"), Some(vec![1, 3, 6]));
        for bad in ["", "1", "3.1", "1.40", "1.3.x", "1.3.-6", "1.3.6."] {
            assert_eq!(parse_oid(bad), None, "{bad}");
        }
        assert!(Oid::from(&parse_oid(APC_OUTLET_CTL).unwrap()).is_ok());
    }
}
