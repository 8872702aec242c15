//! An SNMP client for PDUs: get and set of integers, over v2c or v3, with a
//! timeout per try and a bounded number of tries.
//!
//! Built on `snmp2`'s async session. Every try opens a fresh session (one UDP
//! socket), so a late answer to an abandoned try can never be taken for the
//! answer to the next one; for v3 this also redoes engine discovery, which
//! keeps working after the PDU reboots.

use std::time::Duration;

use snmp2::{AsyncSession, Oid, Value};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::control::settings::{SnmpAuth, SnmpTarget};

#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    #[error(
        "PDU {pdu} ({address}) did not answer in {waited}; check that it is on and reachable, and that the {credentials} right"
    )]
    NoAnswer {
        pdu: String,
        address: String,
        waited: String,
        credentials: &'static str,
    },
    #[error("PDU {pdu} ({address}) refused the request: {status} (SNMP error {code}) for {oid}")]
    Refused {
        pdu: String,
        address: String,
        status: &'static str,
        code: u32,
        oid: String,
    },
    #[error(
        "PDU {pdu} ({address}) turned down the SNMP v3 credentials ({what}); check user, auth_password, priv_password and the protocols"
    )]
    Credentials {
        pdu: String,
        address: String,
        what: String,
    },
    #[error("PDU {pdu} ({address}) answered something unexpected for {oid}: {what}")]
    Unexpected {
        pdu: String,
        address: String,
        oid: String,
        what: String,
    },
}

/// One PDU's SNMP agent.
pub struct SnmpClient {
    pdu: String,
    target: SnmpTarget,
}

/// How one try ended when it did not succeed.
enum TryError {
    /// Worth another try: no answer, a lost or garbled packet.
    Retry,
    Final(SnmpError),
}

impl SnmpClient {
    pub fn new(pdu: &str, target: SnmpTarget) -> Self {
        Self {
            pdu: pdu.to_string(),
            target,
        }
    }

    /// Reads integers, one per OID, in one request.
    ///
    /// # Errors
    /// No answer in time, an SNMP error status, or a value that is not an integer.
    pub async fn get(&self, oids: &[Oid<'static>]) -> Result<Vec<i64>, SnmpError> {
        self.with_tries(|| self.try_get(oids)).await
    }

    /// Writes one integer.
    ///
    /// # Errors
    /// No answer in time, or an SNMP error status (a read-only community, a
    /// value the PDU does not take).
    pub async fn set(&self, oid: &Oid<'static>, value: i64) -> Result<(), SnmpError> {
        self.with_tries(|| self.try_set(oid, value)).await
    }

    async fn with_tries<T, F, Fut>(&self, mut attempt: F) -> Result<T, SnmpError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TryError>>,
    {
        let tries = self.target.retries + 1;
        for _ in 0..tries {
            let deadline = Instant::now() + self.target.timeout;
            match timeout_at(deadline, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(TryError::Final(err))) => return Err(err),
                // A refusal from the host (ICMP port unreachable) comes back
                // at once; waiting out the try gives a PDU that is starting up
                // its full time, and keeps "did not answer in" true.
                Ok(Err(TryError::Retry)) => sleep_until(deadline).await,
                Err(_elapsed) => {}
            }
        }
        Err(SnmpError::NoAnswer {
            pdu: self.pdu.clone(),
            address: self.target.address.clone(),
            waited: waited(self.target.timeout * tries, tries),
            credentials: match self.target.auth {
                SnmpAuth::V2c { .. } => "community is",
                SnmpAuth::V3 { .. } => "user and passwords are",
            },
        })
    }

    async fn session(&self) -> Result<AsyncSession, TryError> {
        // A random start keeps request ids of successive sessions apart.
        let request_id = rand::random::<u16>() as i32;
        let address = self.target.address.as_str();
        match &self.target.auth {
            SnmpAuth::V2c { community } => {
                AsyncSession::new_v2c(address, community.expose().as_bytes(), request_id)
                    .await
                    .map_err(|_| TryError::Retry)
            }
            SnmpAuth::V3 {
                user,
                auth,
                privacy,
            } => {
                use snmp2::v3::{Auth, Security};
                let security = match auth {
                    Some((protocol, password)) => {
                        let level = match privacy {
                            Some((cipher, secret)) => Auth::AuthPriv {
                                cipher: *cipher,
                                privacy_password: secret.expose().as_bytes().to_vec(),
                            },
                            None => Auth::AuthNoPriv,
                        };
                        Security::new(user.as_bytes(), password.expose().as_bytes())
                            .with_auth_protocol(*protocol)
                            .with_auth(level)
                    }
                    None => Security::new(user.as_bytes(), b"").with_auth(Auth::NoAuthNoPriv),
                };
                let mut session = AsyncSession::new_v3(address, request_id, security)
                    .await
                    .map_err(|_| TryError::Retry)?;
                session
                    .init()
                    .await
                    .map_err(|err| self.classify(err, "engine discovery"))?;
                Ok(session)
            }
        }
    }

    async fn try_get(&self, oids: &[Oid<'static>]) -> Result<Vec<i64>, TryError> {
        let mut session = self.session().await?;
        let refs: Vec<&Oid<'static>> = oids.iter().collect();
        let names = || {
            oids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pdu = session
            .get_many(&refs)
            .await
            .map_err(|err| self.classify(err, &names()))?;
        if pdu.error_status != 0 {
            return Err(TryError::Final(self.refused(pdu.error_status, &names())));
        }
        let mut values = Vec::with_capacity(oids.len());
        for (oid, value) in pdu.varbinds {
            let what = match value {
                Value::Integer(n) => {
                    values.push(n);
                    continue;
                }
                Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
                    "no such outlet (check the outlet's index and the PDU's model)".to_string()
                }
                _ => "not an integer".to_string(),
            };
            return Err(TryError::Final(SnmpError::Unexpected {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                oid: oid.to_string(),
                what,
            }));
        }
        if values.len() != oids.len() {
            return Err(TryError::Final(SnmpError::Unexpected {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                oid: names(),
                what: format!("{} values for {} OIDs", values.len(), oids.len()),
            }));
        }
        Ok(values)
    }

    async fn try_set(&self, oid: &Oid<'static>, value: i64) -> Result<(), TryError> {
        let mut session = self.session().await?;
        let pdu = session
            .set(&[(oid, Value::Integer(value))])
            .await
            .map_err(|err| self.classify(err, &oid.to_string()))?;
        if pdu.error_status != 0 {
            return Err(TryError::Final(
                self.refused(pdu.error_status, &oid.to_string()),
            ));
        }
        Ok(())
    }

    fn classify(&self, err: snmp2::Error, oid: &str) -> TryError {
        match err {
            snmp2::Error::Send | snmp2::Error::Receive | snmp2::Error::RequestIdMismatch => {
                TryError::Retry
            }
            snmp2::Error::AuthFailure(kind) => TryError::Final(SnmpError::Credentials {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                what: kind.to_string(),
            }),
            other => TryError::Final(SnmpError::Unexpected {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                oid: oid.to_string(),
                what: other.to_string(),
            }),
        }
    }

    fn refused(&self, code: u32, oid: &str) -> SnmpError {
        SnmpError::Refused {
            pdu: self.pdu.clone(),
            address: self.target.address.clone(),
            status: status_name(code),
            code,
            oid: oid.to_string(),
        }
    }
}

/// "3 s (3 tries of 1 s)".
fn waited(total: Duration, tries: u32) -> String {
    let seconds = |d: Duration| {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0} s")
        } else {
            format!("{s:.1} s")
        }
    };
    if tries == 1 {
        seconds(total)
    } else {
        format!(
            "{} ({tries} tries of {})",
            seconds(total),
            seconds(total / tries)
        )
    }
}

/// RFC 3416 section 3 error-status names.
fn status_name(code: u32) -> &'static str {
    match code {
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess (is the community read-only?)",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation (no such outlet?)",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_said_in_whole_seconds_when_it_can_be() {
        assert_eq!(waited(Duration::from_secs(3), 3), "3 s (3 tries of 1 s)");
        assert_eq!(
            waited(Duration::from_millis(1500), 3),
            "1.5 s (3 tries of 0.5 s)"
        );
        assert_eq!(waited(Duration::from_secs(2), 1), "2 s");
    }
}
