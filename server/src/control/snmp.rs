//! An SNMP client for PDUs: get and set of integers, over v2c or v3, with a
//! timeout per try and a bounded number of tries.
//!
//! Every try opens a fresh UDP socket, so a late answer to an abandoned try
//! can never be taken for the answer to the next one. v2c requests are
//! encoded and their answers judged by [`snmp_message`] (pure): datagrams
//! that do not answer the request (garbage, truncated, another request id or
//! community) are skipped while the try waits, at most
//! [`MAX_DATAGRAMS_PER_TRY`] of them, into one 64 KiB buffer, so a hostile
//! or broken agent costs bounded memory and time and gets an error that says
//! what it sent. v3 goes through `snmp2`'s async session, which also redoes
//! engine discovery each try (so it keeps working after the PDU reboots).
//!
//! [`snmp_message`]: crate::control::snmp_message

use std::net::SocketAddr;
use std::time::Duration;

use snmp2::{AsyncSession, Oid};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::control::settings::{SnmpAuth, SnmpTarget};
use crate::control::snmp_message::{self, Reply, ReplyError, RequestKind};

/// The largest UDP payload; a datagram is read whole or not at all.
const DATAGRAM_BYTES: usize = 65_536;
/// Datagrams that are not the answer, read in one try before giving up on it.
pub const MAX_DATAGRAMS_PER_TRY: u32 = 1000;

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
    #[error(
        "PDU {pdu} ({address}) sent {datagrams} datagrams in {waited} but none answered the request (the last was {last}); check that the address is the PDU's SNMP agent and the community is right"
    )]
    NoReply {
        pdu: String,
        address: String,
        waited: String,
        datagrams: u32,
        last: &'static str,
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
    /// Worth another try: datagrams came, but none answered the request.
    Unrelated {
        datagrams: u32,
        last: &'static str,
    },
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
        self.with_tries(|deadline| self.try_get(oids, deadline))
            .await
    }

    /// Writes one integer.
    ///
    /// # Errors
    /// No answer in time, or an SNMP error status (a read-only community, a
    /// value the PDU does not take).
    pub async fn set(&self, oid: &Oid<'static>, value: i64) -> Result<(), SnmpError> {
        self.with_tries(|deadline| self.try_set(oid, value, deadline))
            .await
    }

    async fn with_tries<T, F, Fut>(&self, mut attempt: F) -> Result<T, SnmpError>
    where
        F: FnMut(Instant) -> Fut,
        Fut: Future<Output = Result<T, TryError>>,
    {
        // Both are bounded in the config; saturating all the same, so a
        // target built by hand cannot overflow or divide by zero.
        let tries = self.target.retries.saturating_add(1);
        let mut unrelated: Option<(u32, &'static str)> = None;
        for _ in 0..tries {
            let deadline = Instant::now() + self.target.timeout;
            match timeout_at(deadline, attempt(deadline)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(TryError::Final(err))) => return Err(err),
                Ok(Err(TryError::Unrelated { datagrams, last })) => {
                    let seen = unrelated.map_or(0, |(n, _)| n);
                    unrelated = Some((seen.saturating_add(datagrams), last));
                    sleep_until(deadline).await;
                }
                // A refusal from the host (ICMP port unreachable) comes back
                // at once; waiting out the try gives a PDU that is starting up
                // its full time, and keeps "did not answer in" true.
                Ok(Err(TryError::Retry)) => sleep_until(deadline).await,
                Err(_elapsed) => {}
            }
        }
        let waited = waited(self.target.timeout.saturating_mul(tries), tries);
        if let Some((datagrams, last)) = unrelated {
            return Err(SnmpError::NoReply {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                waited,
                datagrams,
                last,
            });
        }
        Err(SnmpError::NoAnswer {
            pdu: self.pdu.clone(),
            address: self.target.address.clone(),
            waited,
            credentials: match self.target.auth {
                SnmpAuth::V2c { .. } => "community is",
                SnmpAuth::V3 { .. } => "user and passwords are",
            },
        })
    }

    /// One v2c request and its answer, skipping datagrams that are not it,
    /// until `deadline`.
    async fn exchange_v2c(
        &self,
        community: &[u8],
        kind: RequestKind,
        oids: &[Oid<'static>],
        values: &[i64],
        deadline: Instant,
    ) -> Result<Vec<i64>, TryError> {
        let request_id = rand::random::<i32>();
        let request = snmp_message::encode_request(community, request_id, kind, oids, values);
        let socket = connect(&self.target.address)
            .await
            .map_err(|_| TryError::Retry)?;
        socket.send(&request).await.map_err(|_| TryError::Retry)?;
        let mut buffer = vec![0u8; DATAGRAM_BYTES];
        let mut skipped = 0u32;
        let mut last = "";
        while skipped < MAX_DATAGRAMS_PER_TRY {
            let len = match timeout_at(deadline, socket.recv(&mut buffer)).await {
                Ok(Ok(len)) => len,
                // ICMP port unreachable, or another socket error.
                Ok(Err(_)) if skipped == 0 => return Err(TryError::Retry),
                Ok(Err(_)) | Err(_) => break,
            };
            match snmp_message::read_reply(&buffer[..len], request_id, community, kind, oids) {
                Reply::Answer(Ok(values)) => return Ok(values),
                Reply::Answer(Err(err)) => {
                    return Err(TryError::Final(self.reply_error(err, oids)));
                }
                Reply::Unrelated(why) => {
                    skipped += 1;
                    last = why;
                }
            }
        }
        if skipped == 0 {
            Err(TryError::Retry)
        } else {
            crate::limits::refused(
                &self.target.address,
                "MAX_DATAGRAMS_PER_TRY",
                format_args!(
                    "{skipped} datagrams that did not answer the request (the last was {last})"
                ),
            );
            Err(TryError::Unrelated {
                datagrams: skipped,
                last,
            })
        }
    }

    fn reply_error(&self, err: ReplyError, oids: &[Oid<'static>]) -> SnmpError {
        match err {
            ReplyError::Refused { code } => self.refused(code, &names(oids)),
            other => SnmpError::Unexpected {
                pdu: self.pdu.clone(),
                address: self.target.address.clone(),
                oid: names(oids),
                what: other.to_string(),
            },
        }
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

    async fn try_get(
        &self,
        oids: &[Oid<'static>],
        deadline: Instant,
    ) -> Result<Vec<i64>, TryError> {
        if let SnmpAuth::V2c { community } = &self.target.auth {
            return self
                .exchange_v2c(
                    community.expose().as_bytes(),
                    RequestKind::Get,
                    oids,
                    &[],
                    deadline,
                )
                .await;
        }
        let mut session = self.session().await?;
        let refs: Vec<&Oid<'static>> = oids.iter().collect();
        let pdu = session
            .get_many(&refs)
            .await
            .map_err(|err| self.classify(err, &names(oids)))?;
        if pdu.error_status != 0 {
            return Err(TryError::Final(
                self.refused(pdu.error_status, &names(oids)),
            ));
        }
        snmp_message::check_values(pdu.varbinds, oids)
            .map_err(|err| TryError::Final(self.reply_error(err, oids)))
    }

    async fn try_set(
        &self,
        oid: &Oid<'static>,
        value: i64,
        deadline: Instant,
    ) -> Result<(), TryError> {
        if let SnmpAuth::V2c { community } = &self.target.auth {
            let oids = [oid.clone()];
            return self
                .exchange_v2c(
                    community.expose().as_bytes(),
                    RequestKind::Set,
                    &oids,
                    &[value],
                    deadline,
                )
                .await
                .map(|_| ());
        }
        let mut session = self.session().await?;
        let pdu = session
            .set(&[(oid, snmp2::Value::Integer(value))])
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

/// The OIDs asked for, as the error names them.
fn names(oids: &[Oid<'_>]) -> String {
    oids.iter()
        .map(snmp_message::oid_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A UDP socket connected to `address` (`HOST:PORT`), so the kernel drops
/// datagrams from anyone else.
async fn connect(address: &str) -> std::io::Result<UdpSocket> {
    let target: SocketAddr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let local: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
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
