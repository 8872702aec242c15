//! The lights' part of the config: `[[pdu]]`, `[[outlet]]`, `timezone` and the
//! relay guard, as written ([`RawPdu`], [`RawOutlet`]) and as checked
//! ([`LightsConfig`]).
//!
//! With no `[[pdu]]` and no `[[outlet]]`, a simulated PDU of eight outlets
//! stands in, so the whole app works out of the box.

use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use thiserror::Error;

use crate::config::Secret;
use crate::control::guard::GuardSettings;
use crate::control::pdu::Model;

/// The name of the PDU made when none is configured.
pub const SIMULATED_PDU: &str = "simulated";
/// Outlets on the PDU made when none is configured.
pub const SIMULATED_OUTLETS: u32 = 8;
pub const DEFAULT_TIMEZONE: &str = "UTC";
pub const DEFAULT_POLL_S: u64 = 30;
pub const DEFAULT_GUARD_SWITCHES: u32 = 10;
pub const DEFAULT_GUARD_WINDOW_S: u64 = 60;
pub const DEFAULT_SNMP_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_SNMP_RETRIES: u32 = 2;
/// Upper bounds of the values above. Each feeds time arithmetic (a deadline
/// is now plus the value), so each must stay far from overflow; within them
/// every setting a PDU or a tree could want still fits.
pub const MAX_POLL_S: u64 = 86_400;
/// A relay guard keeps one instant per switch in its window: this bounds its
/// memory per outlet (1.6 MB at most).
pub const MAX_GUARD_SWITCHES: u32 = 100_000;
pub const MAX_GUARD_WINDOW_S: u64 = 86_400;
/// Audit entries kept: a season of evenings with a busy tweet feed.
pub const DEFAULT_AUDIT_KEEP: u32 = 10_000;
/// Fewer would not show one evening; more would make the table a burden.
const MIN_AUDIT_KEEP: u64 = 100;
const MAX_AUDIT_KEEP: u64 = 1_000_000;
pub const MAX_SNMP_TIMEOUT_MS: u64 = 60_000;
pub const MAX_SNMP_RETRIES: u32 = 10;

#[derive(Debug, Error)]
pub enum LightsConfigError {
    #[error("timezone = {0:?} is not an IANA time zone name like \"Europe/Amsterdam\" or \"UTC\"")]
    Timezone(String),
    #[error(
        "{kind} name {name:?} is not allowed: use 1 to 64 lowercase letters, digits, '-' or '_'"
    )]
    Name { kind: &'static str, name: String },
    #[error("{kind} {name:?} is configured twice")]
    Duplicate { kind: &'static str, name: String },
    #[error("outlet {outlet:?} names pdu {pdu:?}, but no [[pdu]] has that name")]
    UnknownPdu { outlet: String, pdu: String },
    #[error("outlets {0:?} and {1:?} are the same outlet ({2} index {3})")]
    SameOutlet(String, String, String, u32),
    #[error("outlet {0:?}: index must be 1 or more")]
    Index(String),
    #[error("pdu {pdu:?}: {message}")]
    Pdu { pdu: String, message: String },
    #[error("{key} must be at least {min}")]
    TooSmall { key: &'static str, min: u64 },
    #[error("{key} = {value} is too large: it must be at most {max}")]
    TooLarge {
        key: &'static str,
        value: u64,
        max: u64,
    },
}

/// One `[[pdu]]` table as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPdu {
    pub name: String,
    /// `HOST:PORT`; the port defaults to 161.
    pub address: Option<String>,
    /// "2c" (the default) or "3".
    pub version: Option<String>,
    /// SNMP v2c community.
    pub community: Option<Secret>,
    /// SNMP v3 user name, and the passwords that select the security level.
    pub user: Option<String>,
    /// "md5", "sha1" (the default), "sha224", "sha256", "sha384" or "sha512".
    pub auth_protocol: Option<String>,
    pub auth_password: Option<Secret>,
    /// "des", "aes128" (the default), "aes192" or "aes256".
    pub priv_protocol: Option<String>,
    pub priv_password: Option<Secret>,
    /// "apc" (the default), "generic", or "simulated".
    pub model: Option<String>,
    /// Generic model: the OID of the outlet control column; the outlet's index
    /// is appended.
    pub outlet_oid: Option<String>,
    /// Generic model: where the outlet's state is read, if not `outlet_oid`.
    pub state_oid: Option<String>,
    /// Generic model: the integers that mean on and off.
    pub on_value: Option<i64>,
    pub off_value: Option<i64>,
    /// Generic model: the integer that reboots an outlet (and reads while it
    /// reboots); without it the model cannot reboot.
    pub reboot_value: Option<i64>,
    /// Simulated model: how many outlets.
    pub outlets: Option<u32>,
    /// One SNMP try waits this long for an answer (10 to 60000).
    pub timeout_ms: Option<u64>,
    /// Tries after the first before the PDU counts as unreachable (0 to 10).
    pub retries: Option<u32>,
}

/// One `[[outlet]]` table as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutlet {
    pub name: String,
    pub pdu: String,
    pub index: u32,
    /// Powers something that must stay up (the camera, the network switch):
    /// it never flashes and tweets never switch it; admins still can.
    #[serde(default)]
    pub protected: bool,
}

/// The lights' settings that are not PDUs or outlets, already merged from
/// flags, environment and file.
#[derive(Debug, Default)]
pub struct RawLights {
    pub timezone: Option<String>,
    pub poll_s: Option<u64>,
    pub guard_switches: Option<u32>,
    pub guard_window_s: Option<u64>,
    pub audit_keep: Option<u32>,
    pub pdus: Vec<RawPdu>,
    pub outlets: Vec<RawOutlet>,
}

/// How to reach a PDU over SNMP.
#[derive(Debug, Clone)]
pub enum SnmpAuth {
    V2c {
        community: Secret,
    },
    V3 {
        user: String,
        /// `None`: noAuthNoPriv.
        auth: Option<(snmp2::v3::AuthProtocol, Secret)>,
        /// `None`: no privacy (authNoPriv, or noAuthNoPriv).
        privacy: Option<(snmp2::v3::Cipher, Secret)>,
    },
}

#[derive(Debug, Clone)]
pub struct SnmpTarget {
    pub address: String,
    pub auth: SnmpAuth,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub enum PduKind {
    /// Boxed: the SNMP target is much larger than the simulated variant.
    Snmp {
        target: Box<SnmpTarget>,
        model: Model,
    },
    Simulated,
}

#[derive(Debug, Clone)]
pub struct PduConfig {
    pub name: String,
    pub kind: PduKind,
}

#[derive(Debug, Clone)]
pub struct OutletConfig {
    pub name: String,
    /// Position in [`LightsConfig::pdus`].
    pub pdu: usize,
    pub index: u32,
    /// Refuses flashes and tweets.
    pub protected: bool,
}

/// The checked lights config.
#[derive(Debug, Clone)]
pub struct LightsConfig {
    pub timezone: Tz,
    pub pdus: Vec<PduConfig>,
    /// In config order, which is the order `GET /api/lights` lists them in.
    pub outlets: Vec<OutletConfig>,
    /// How often each PDU is read back, so the state shown is the hardware's.
    pub poll: Duration,
    pub guard: GuardSettings,
    /// Audit entries kept: the newest, whatever their age.
    pub audit_keep: u32,
}

impl LightsConfig {
    /// # Errors
    /// The first value that does not check out, as one line.
    pub fn check(raw: RawLights) -> Result<Self, LightsConfigError> {
        let tz_name = raw.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
        let timezone: Tz = tz_name
            .parse()
            .map_err(|_| LightsConfigError::Timezone(tz_name.to_string()))?;
        let poll_s = raw.poll_s.unwrap_or(DEFAULT_POLL_S);
        at_least("lights_poll_s", poll_s, 1)?;
        at_most("lights_poll_s", poll_s, MAX_POLL_S)?;
        let switches = raw.guard_switches.unwrap_or(DEFAULT_GUARD_SWITCHES);
        // A flash needs two switches (on, then back), so fewer could never flash.
        at_least("relay_guard_switches", u64::from(switches), 2)?;
        at_most(
            "relay_guard_switches",
            u64::from(switches),
            u64::from(MAX_GUARD_SWITCHES),
        )?;
        let window_s = raw.guard_window_s.unwrap_or(DEFAULT_GUARD_WINDOW_S);
        at_least("relay_guard_window_s", window_s, 1)?;
        at_most("relay_guard_window_s", window_s, MAX_GUARD_WINDOW_S)?;
        let audit_keep = raw.audit_keep.unwrap_or(DEFAULT_AUDIT_KEEP);
        at_least("audit_keep", u64::from(audit_keep), MIN_AUDIT_KEEP)?;
        at_most("audit_keep", u64::from(audit_keep), MAX_AUDIT_KEEP)?;

        let (pdus, outlets) = if raw.pdus.is_empty() && raw.outlets.is_empty() {
            simulated_default()
        } else {
            let mut pdus: Vec<PduConfig> = Vec::with_capacity(raw.pdus.len());
            for raw_pdu in raw.pdus {
                check_name("pdu", &raw_pdu.name)?;
                if pdus.iter().any(|p| p.name == raw_pdu.name) {
                    return Err(LightsConfigError::Duplicate {
                        kind: "pdu",
                        name: raw_pdu.name,
                    });
                }
                pdus.push(pdu(raw_pdu)?);
            }
            let mut outlets: Vec<OutletConfig> = Vec::with_capacity(raw.outlets.len());
            for raw_outlet in raw.outlets {
                check_name("outlet", &raw_outlet.name)?;
                if outlets.iter().any(|o| o.name == raw_outlet.name) {
                    return Err(LightsConfigError::Duplicate {
                        kind: "outlet",
                        name: raw_outlet.name,
                    });
                }
                let Some(pdu) = pdus.iter().position(|p| p.name == raw_outlet.pdu) else {
                    return Err(LightsConfigError::UnknownPdu {
                        outlet: raw_outlet.name,
                        pdu: raw_outlet.pdu,
                    });
                };
                if raw_outlet.index == 0 {
                    return Err(LightsConfigError::Index(raw_outlet.name));
                }
                if let Some(other) = outlets
                    .iter()
                    .find(|o| o.pdu == pdu && o.index == raw_outlet.index)
                {
                    return Err(LightsConfigError::SameOutlet(
                        other.name.clone(),
                        raw_outlet.name,
                        raw_outlet.pdu,
                        raw_outlet.index,
                    ));
                }
                outlets.push(OutletConfig {
                    name: raw_outlet.name,
                    pdu,
                    index: raw_outlet.index,
                    protected: raw_outlet.protected,
                });
            }
            // A simulated PDU with no outlets named gets one per socket, so
            // `model = "simulated"` alone is enough to try things out.
            for (i, pdu) in pdus.iter().enumerate() {
                if let PduKind::Simulated = pdu.kind
                    && !outlets.iter().any(|o| o.pdu == i)
                {
                    outlets.extend(simulated_outlets(&pdu.name, i, SIMULATED_OUTLETS));
                }
            }
            (pdus, outlets)
        };
        Ok(Self {
            timezone,
            pdus,
            outlets,
            poll: Duration::from_secs(poll_s),
            guard: GuardSettings {
                max_switches: switches,
                window: Duration::from_secs(window_s),
            },
            audit_keep,
        })
    }
}

fn simulated_default() -> (Vec<PduConfig>, Vec<OutletConfig>) {
    let pdus = vec![PduConfig {
        name: SIMULATED_PDU.to_string(),
        kind: PduKind::Simulated,
    }];
    let outlets = simulated_outlets("outlet", 0, SIMULATED_OUTLETS).collect();
    (pdus, outlets)
}

fn simulated_outlets(prefix: &str, pdu: usize, count: u32) -> impl Iterator<Item = OutletConfig> {
    let prefix = prefix.to_string();
    (1..=count).map(move |index| OutletConfig {
        name: format!("{prefix}-{index}"),
        pdu,
        index,
        protected: false,
    })
}

fn pdu(raw: RawPdu) -> Result<PduConfig, LightsConfigError> {
    let name = raw.name.clone();
    let fail = |message: String| LightsConfigError::Pdu {
        pdu: name.clone(),
        message,
    };
    let model_name = raw.model.as_deref().unwrap_or("apc");
    if model_name == "simulated" {
        return Ok(PduConfig {
            name: raw.name,
            kind: PduKind::Simulated,
        });
    }
    let model = match model_name {
        "apc" => Model::apc(),
        "generic" => {
            let outlet_oid = raw.outlet_oid.as_deref().ok_or_else(|| {
                fail("model \"generic\" needs outlet_oid (the control column; the outlet index is appended)".into())
            })?;
            let (Some(on), Some(off)) = (raw.on_value, raw.off_value) else {
                return Err(fail(
                    "model \"generic\" needs on_value and off_value".into(),
                ));
            };
            if on == off || raw.reboot_value.is_some_and(|r| r == on || r == off) {
                return Err(fail(
                    "on_value, off_value and reboot_value must all differ".into(),
                ));
            }
            Model::generic(
                outlet_oid,
                raw.state_oid.as_deref(),
                on,
                off,
                raw.reboot_value,
            )
            .map_err(fail)?
        }
        other => {
            return Err(fail(format!(
                "model {other:?} is not known; use \"apc\", \"generic\" or \"simulated\""
            )));
        }
    };
    let address = raw
        .address
        .as_deref()
        .ok_or_else(|| fail("needs an address like \"192.0.2.10:161\"".into()))?;
    let address = if address.parse::<std::net::SocketAddr>().is_ok() || address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:161")
    };
    let auth = match raw.version.as_deref().unwrap_or("2c") {
        "2c" => SnmpAuth::V2c {
            community: raw
                .community
                .ok_or_else(|| fail("version \"2c\" needs a community".into()))?,
        },
        "3" => {
            let user = raw
                .user
                .ok_or_else(|| fail("version \"3\" needs a user".into()))?;
            let auth = match raw.auth_password {
                Some(password) => Some((
                    auth_protocol(raw.auth_protocol.as_deref().unwrap_or("sha1")).map_err(&fail)?,
                    password,
                )),
                None => None,
            };
            let privacy = match raw.priv_password {
                Some(_) if auth.is_none() => {
                    return Err(fail(
                        "priv_password needs auth_password too (SNMP v3 has no privacy without authentication)".into(),
                    ));
                }
                Some(password) => Some((
                    cipher(raw.priv_protocol.as_deref().unwrap_or("aes128")).map_err(&fail)?,
                    password,
                )),
                None => None,
            };
            SnmpAuth::V3 {
                user,
                auth,
                privacy,
            }
        }
        other => {
            return Err(fail(format!(
                "version {other:?} is not supported; use \"2c\" or \"3\""
            )));
        }
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_SNMP_TIMEOUT_MS);
    if timeout_ms < 10 {
        return Err(fail("timeout_ms must be at least 10".into()));
    }
    if timeout_ms > MAX_SNMP_TIMEOUT_MS {
        return Err(fail(format!(
            "timeout_ms = {timeout_ms} is too large: it must be at most {MAX_SNMP_TIMEOUT_MS}"
        )));
    }
    let retries = raw.retries.unwrap_or(DEFAULT_SNMP_RETRIES);
    if retries > MAX_SNMP_RETRIES {
        return Err(fail(format!(
            "retries = {retries} is too large: it must be at most {MAX_SNMP_RETRIES}"
        )));
    }
    Ok(PduConfig {
        name: raw.name,
        kind: PduKind::Snmp {
            target: Box::new(SnmpTarget {
                address,
                auth,
                timeout: Duration::from_millis(timeout_ms),
                retries,
            }),
            model,
        },
    })
}

fn auth_protocol(name: &str) -> Result<snmp2::v3::AuthProtocol, String> {
    use snmp2::v3::AuthProtocol as A;
    Ok(match name {
        "md5" => A::Md5,
        "sha1" => A::Sha1,
        "sha224" => A::Sha224,
        "sha256" => A::Sha256,
        "sha384" => A::Sha384,
        "sha512" => A::Sha512,
        other => {
            return Err(format!(
                "auth_protocol {other:?} is not known; use md5, sha1, sha224, sha256, sha384 or sha512"
            ));
        }
    })
}

fn cipher(name: &str) -> Result<snmp2::v3::Cipher, String> {
    use snmp2::v3::Cipher as C;
    Ok(match name {
        "des" => C::Des,
        "aes128" | "aes" => C::Aes128,
        "aes192" => C::Aes192,
        "aes256" => C::Aes256,
        other => {
            return Err(format!(
                "priv_protocol {other:?} is not known; use des, aes128, aes192 or aes256"
            ));
        }
    })
}

fn check_name(kind: &'static str, name: &str) -> Result<(), LightsConfigError> {
    if crate::config::is_valid_name(name) {
        Ok(())
    } else {
        Err(LightsConfigError::Name {
            kind,
            name: name.to_string(),
        })
    }
}

fn at_least(key: &'static str, value: u64, min: u64) -> Result<(), LightsConfigError> {
    if value < min {
        Err(LightsConfigError::TooSmall { key, min })
    } else {
        Ok(())
    }
}

fn at_most(key: &'static str, value: u64, max: u64) -> Result<(), LightsConfigError> {
    if value > max {
        Err(LightsConfigError::TooLarge { key, value, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<LightsConfig, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default, rename = "pdu")]
            pdus: Vec<RawPdu>,
            #[serde(default, rename = "outlet")]
            outlets: Vec<RawOutlet>,
            timezone: Option<String>,
        }
        let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        LightsConfig::check(RawLights {
            timezone: file.timezone,
            pdus: file.pdus,
            outlets: file.outlets,
            ..RawLights::default()
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn nothing_configured_gives_eight_simulated_outlets() {
        let config = check("").unwrap();
        assert_eq!(config.pdus.len(), 1);
        assert!(matches!(config.pdus[0].kind, PduKind::Simulated));
        let names: Vec<_> = config.outlets.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "outlet-1");
        assert_eq!(names[7], "outlet-8");
        assert_eq!(config.timezone, chrono_tz::UTC);
    }

    #[test]
    fn a_full_config_checks_out() {
        let config = check(
            r#"
            timezone = "Europe/Amsterdam"
            [[pdu]]
            name = "pdu1"
            address = "192.0.2.10:161"
            community = "private"
            [[pdu]]
            name = "pdu2"
            address = "192.0.2.11"
            version = "3"
            user = "tinsel"
            auth_password = "authpass1"
            priv_password = "privpass1"
            model = "generic"
            outlet_oid = "1.3.6.1.4.1.9999.1.2"
            on_value = 1
            off_value = 0
            [[outlet]]
            name = "tree-lights"
            pdu = "pdu1"
            index = 1
            [[outlet]]
            name = "star"
            pdu = "pdu2"
            index = 1
            "#,
        )
        .unwrap();
        assert_eq!(config.timezone, chrono_tz::Europe::Amsterdam);
        assert_eq!(config.outlets.len(), 2);
        assert_eq!(config.outlets[1].pdu, 1);
        let PduKind::Snmp { target, .. } = &config.pdus[1].kind else {
            panic!("pdu2 is SNMP")
        };
        assert_eq!(target.address, "192.0.2.11:161");
        assert!(matches!(
            target.auth,
            SnmpAuth::V3 {
                auth: Some(_),
                privacy: Some(_),
                ..
            }
        ));
        assert!(!format!("{config:?}").contains("private"));
        assert!(!format!("{config:?}").contains("privpass1"));
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        let pdu = "[[pdu]]\nname = \"pdu1\"\naddress = \"192.0.2.10:161\"\ncommunity = \"c\"\n";
        let cases = [
            (
                "[[outlet]]\nname = \"a\"\npdu = \"nope\"\nindex = 1\n".to_string(),
                "outlet \"a\" names pdu \"nope\", but no [[pdu]] has that name",
            ),
            (
                format!("{pdu}{pdu}"),
                "pdu \"pdu1\" is configured twice",
            ),
            (
                format!("{pdu}[[outlet]]\nname = \"a\"\npdu = \"pdu1\"\nindex = 1\n[[outlet]]\nname = \"a\"\npdu = \"pdu1\"\nindex = 2\n"),
                "outlet \"a\" is configured twice",
            ),
            (
                format!("{pdu}[[outlet]]\nname = \"a\"\npdu = \"pdu1\"\nindex = 1\n[[outlet]]\nname = \"b\"\npdu = \"pdu1\"\nindex = 1\n"),
                "outlets \"a\" and \"b\" are the same outlet (pdu1 index 1)",
            ),
            (
                "[[pdu]]\nname = \"g\"\naddress = \"192.0.2.1\"\ncommunity = \"c\"\nmodel = \"generic\"\noutlet_oid = \"1.3.x\"\non_value = 1\noff_value = 2\n".to_string(),
                "pdu \"g\": outlet_oid \"1.3.x\" is not an OID like 1.3.6.1.4.1.318.1.1.4.4.2.1.3",
            ),
            (
                "timezone = \"Mars/Olympus\"".to_string(),
                "timezone = \"Mars/Olympus\" is not an IANA time zone name like \"Europe/Amsterdam\" or \"UTC\"",
            ),
            (
                "[[pdu]]\nname = \"p\"\naddress = \"192.0.2.1\"\n".to_string(),
                "pdu \"p\": version \"2c\" needs a community",
            ),
        ];
        for (text, want) in cases {
            let err = check(&text).unwrap_err();
            assert_eq!(err, want, "for config:\n{text}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn values_that_feed_arithmetic_have_an_upper_bound() {
        let pdu = "[[pdu]]\nname = \"p\"\naddress = \"192.0.2.1\"\ncommunity = \"c\"\n";
        assert_eq!(
            check(&format!("{pdu}retries = 4294967295\n")).unwrap_err(),
            "pdu \"p\": retries = 4294967295 is too large: it must be at most 10"
        );
        assert_eq!(
            check(&format!("{pdu}timeout_ms = 9223372036854775807\n")).unwrap_err(),
            "pdu \"p\": timeout_ms = 9223372036854775807 is too large: it must be at most 60000"
        );
        assert!(check(&format!("{pdu}retries = 10\ntimeout_ms = 60000\n")).is_ok());
        let lights = |raw: RawLights| LightsConfig::check(raw).map_err(|e| e.to_string());
        assert_eq!(
            lights(RawLights {
                poll_s: Some(u64::MAX),
                ..RawLights::default()
            })
            .unwrap_err(),
            "lights_poll_s = 18446744073709551615 is too large: it must be at most 86400"
        );
        assert_eq!(
            lights(RawLights {
                guard_window_s: Some(u64::MAX),
                ..RawLights::default()
            })
            .unwrap_err(),
            "relay_guard_window_s = 18446744073709551615 is too large: it must be at most 86400"
        );
        assert_eq!(
            lights(RawLights {
                guard_switches: Some(u32::MAX),
                ..RawLights::default()
            })
            .unwrap_err(),
            "relay_guard_switches = 4294967295 is too large: it must be at most 100000"
        );
        assert!(
            lights(RawLights {
                poll_s: Some(MAX_POLL_S),
                guard_switches: Some(MAX_GUARD_SWITCHES),
                guard_window_s: Some(MAX_GUARD_WINDOW_S),
                ..RawLights::default()
            })
            .is_ok()
        );
    }
}
