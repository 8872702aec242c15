//! SNMP v2c messages as bytes, pure: the GetRequest or SetRequest sent, and
//! what each datagram that comes back says about it.
//!
//! The agent is a peer on the network, and anything may arrive on the socket
//! while a request waits: a late answer to an earlier request, a truncated or
//! oversized packet, garbage. [`read_reply`] sorts each datagram into
//! [`Reply::Unrelated`] (skip it and keep listening) or [`Reply::Answer`],
//! and checks an answer as strictly as RFC 3416 section 4.2.1 allows: the
//! request id and community match, and the variable bindings name the OIDs
//! asked for, in order, each once.
//!
//! Decoding uses `snmp2`'s BER reader, whose length checks were read for this
//! (no slicing past the end, no allocation from an announced length); it runs
//! under `catch_unwind` all the same, so a panic in it costs one datagram.

use std::fmt::Write as _;

use snmp2::{MessageType, Oid, Pdu, Value};

/// RFC 3416 section 3: version 1 in the message means SNMPv2c.
const VERSION_2C: i64 = 1;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_GET: u8 = 0xa0;
const TAG_SET: u8 = 0xa3;
/// Arcs of an OID from the network shown in an error; the rest is elided.
const MAX_OID_ARCS_SHOWN: usize = 32;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Read each OID's value.
    Get,
    /// Write each OID's value.
    Set,
}

/// What an answer to our request said, when it is not the values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The agent's error-status (RFC 3416 section 3), non-zero.
    #[error("error status {code}")]
    Refused { code: u32 },
    #[error("no such outlet at {oid} (check the outlet's index and the PDU's model)")]
    NoSuchOutlet { oid: String },
    #[error("{oid} is {what}, not an integer")]
    NotInteger { oid: String, what: &'static str },
    #[error("the answer names {got} where {asked} was asked")]
    WrongOid { asked: String, got: String },
    #[error("{got} values for {want} OIDs")]
    Count { got: usize, want: usize },
}

/// What one datagram is to the request waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Not an answer to this request; why, for the error if nothing better
    /// comes before the deadline.
    Unrelated(&'static str),
    /// The answer: the integers asked for (empty for a set), or why not.
    Answer(Result<Vec<i64>, ReplyError>),
}

/// A v2c request, BER-encoded. `values` are written by a set; a get sends
/// NULLs.
pub fn encode_request(
    community: &[u8],
    request_id: i32,
    kind: RequestKind,
    oids: &[Oid<'_>],
    values: &[i64],
) -> Vec<u8> {
    let mut bindings = Vec::new();
    for (i, oid) in oids.iter().enumerate() {
        let mut binding = Vec::new();
        tlv(TAG_OID, oid.as_bytes(), &mut binding);
        match (kind, values.get(i)) {
            (RequestKind::Set, Some(value)) => integer(*value, &mut binding),
            _ => tlv(TAG_NULL, &[], &mut binding),
        }
        tlv(TAG_SEQUENCE, &binding, &mut bindings);
    }
    let mut pdu = Vec::new();
    integer(i64::from(request_id), &mut pdu);
    integer(0, &mut pdu); // error-status
    integer(0, &mut pdu); // error-index
    tlv(TAG_SEQUENCE, &bindings, &mut pdu);
    let mut message = Vec::new();
    integer(VERSION_2C, &mut message);
    tlv(TAG_OCTET_STRING, community, &mut message);
    let tag = match kind {
        RequestKind::Get => TAG_GET,
        RequestKind::Set => TAG_SET,
    };
    tlv(tag, &pdu, &mut message);
    let mut out = Vec::with_capacity(message.len() + 4);
    tlv(TAG_SEQUENCE, &message, &mut out);
    out
}

/// Judges one datagram against the request with `request_id`, `community`
/// and `oids`. For a get the answer's values are checked and returned; for a
/// set only the error-status counts (agents echo the value, or not).
pub fn read_reply(
    datagram: &[u8],
    request_id: i32,
    community: &[u8],
    kind: RequestKind,
    oids: &[Oid<'_>],
) -> Reply {
    let decoded = std::panic::catch_unwind(|| {
        let pdu = match Pdu::from_bytes(datagram) {
            Ok(pdu) => pdu,
            Err(_) => return Reply::Unrelated("a datagram that does not decode as SNMP"),
        };
        if pdu.message_type != MessageType::Response {
            return Reply::Unrelated("an SNMP message that is not a response");
        }
        if pdu.req_id != request_id {
            return Reply::Unrelated("a response with another request id");
        }
        if pdu.community != community {
            return Reply::Unrelated("a response with another community");
        }
        if pdu.error_status != 0 {
            return Reply::Answer(Err(ReplyError::Refused {
                code: pdu.error_status,
            }));
        }
        match kind {
            RequestKind::Set => Reply::Answer(Ok(Vec::new())),
            RequestKind::Get => Reply::Answer(check_values(pdu.varbinds, oids)),
        }
    });
    decoded.unwrap_or(Reply::Unrelated(
        "a datagram the SNMP decoder could not take",
    ))
}

/// The integers of `bindings`, which must name `oids` in order, each once.
///
/// # Errors
/// The first binding that is not what was asked.
pub fn check_values<'a>(
    bindings: impl Iterator<Item = (Oid<'a>, Value<'a>)>,
    oids: &[Oid<'_>],
) -> Result<Vec<i64>, ReplyError> {
    let mut values = Vec::with_capacity(oids.len());
    // One more than asked is enough to know there are too many.
    for (i, (oid, value)) in bindings.take(oids.len() + 1).enumerate() {
        let Some(asked) = oids.get(i) else {
            return Err(ReplyError::Count {
                got: i + 1,
                want: oids.len(),
            });
        };
        if oid.as_bytes() != asked.as_bytes() {
            return Err(ReplyError::WrongOid {
                asked: oid_text(asked),
                got: oid_text(&oid),
            });
        }
        let what = match value {
            Value::Integer(n) => {
                values.push(n);
                continue;
            }
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
                return Err(ReplyError::NoSuchOutlet {
                    oid: oid_text(asked),
                });
            }
            Value::OctetString(_) => "a string",
            Value::Null => "NULL",
            Value::Counter32(_) | Value::Counter64(_) => "a counter",
            Value::Timeticks(_) => "a time",
            Value::ObjectIdentifier(_) => "an OID",
            _ => "another type",
        };
        return Err(ReplyError::NotInteger {
            oid: oid_text(asked),
            what,
        });
    }
    if values.len() != oids.len() {
        return Err(ReplyError::Count {
            got: values.len(),
            want: oids.len(),
        });
    }
    Ok(values)
}

/// An OID as dotted numbers, short whatever the network sent.
pub fn oid_text(oid: &Oid<'_>) -> String {
    let Some(arcs) = oid.iter() else {
        return format!(
            "an OID of {} bytes that does not decode",
            oid.as_bytes().len()
        );
    };
    let mut text = String::new();
    for (i, arc) in arcs.enumerate() {
        if i == MAX_OID_ARCS_SHOWN {
            text.push_str("...");
            break;
        }
        if i > 0 {
            text.push('.');
        }
        let _ = write!(text, "{arc}");
    }
    text
}

fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// An INTEGER in the fewest two's-complement bytes (X.690 section 8.3).
fn integer(value: i64, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (first, next) = (bytes[start], bytes[start + 1]);
        let redundant = (first == 0x00 && next & 0x80 == 0) || (first == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    tlv(TAG_INTEGER, &bytes[start..], out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(arcs: &[u64]) -> Oid<'static> {
        Oid::from(arcs).unwrap()
    }

    /// A v2c response, encoded by hand like a hostile agent would.
    fn response(
        request_id: i32,
        community: &[u8],
        error: i64,
        bindings: &[(&[u8], Vec<u8>)],
    ) -> Vec<u8> {
        let mut list = Vec::new();
        for (oid_bytes, value) in bindings {
            let mut binding = Vec::new();
            tlv(TAG_OID, oid_bytes, &mut binding);
            binding.extend_from_slice(value);
            tlv(TAG_SEQUENCE, &binding, &mut list);
        }
        let mut pdu = Vec::new();
        integer(i64::from(request_id), &mut pdu);
        integer(error, &mut pdu);
        integer(0, &mut pdu);
        tlv(TAG_SEQUENCE, &list, &mut pdu);
        let mut message = Vec::new();
        integer(1, &mut message);
        tlv(TAG_OCTET_STRING, community, &mut message);
        tlv(0xa2, &pdu, &mut message);
        let mut out = Vec::new();
        tlv(TAG_SEQUENCE, &message, &mut out);
        out
    }

    fn int(n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        integer(n, &mut out);
        out
    }

    #[test]
    fn a_request_decodes_as_snmp2_reads_it() {
        let oids = [oid(&[1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 1])];
        let bytes = encode_request(b"private", -5, RequestKind::Set, &oids, &[-129]);
        let pdu = Pdu::from_bytes(&bytes).unwrap();
        assert_eq!(pdu.message_type, MessageType::SetRequest);
        assert_eq!((pdu.req_id, pdu.community), (-5, &b"private"[..]));
        let bindings: Vec<_> = pdu.varbinds.collect();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].0, oids[0]);
        assert!(matches!(bindings[0].1, Value::Integer(-129)));
        for n in [0, 1, 127, 128, 255, 256, -1, -128, -129, i64::MAX, i64::MIN] {
            let mut one = Vec::new();
            integer(n, &mut one);
            let read = snmp2::AsnReader::from_bytes(&one)
                .read_asn_integer()
                .unwrap();
            assert_eq!(read, n);
        }
        // A long community takes the long length form.
        let long = vec![b'c'; 300];
        let bytes = encode_request(&long, 1, RequestKind::Get, &oids, &[]);
        assert_eq!(Pdu::from_bytes(&bytes).unwrap().community, &long[..]);
    }

    #[test]
    fn hostile_replies_are_skipped_or_named() {
        let asked = oid(&[1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 1]);
        let other = oid(&[1, 3, 6, 1, 2, 1, 1, 5, 0]);
        let oids = [asked.clone()];
        let read = |bytes: &[u8]| read_reply(bytes, 7, b"public", RequestKind::Get, &oids);
        let ours = asked.as_bytes();

        assert_eq!(
            read(&response(7, b"public", 0, &[(ours, int(1))])),
            Reply::Answer(Ok(vec![1]))
        );
        let good = response(7, b"public", 0, &[(ours, int(1))]);
        for cut in 0..good.len() {
            assert!(
                matches!(read(&good[..cut]), Reply::Unrelated(_)),
                "cut at {cut}"
            );
        }
        assert_eq!(
            read(&response(8, b"public", 0, &[(ours, int(1))])),
            Reply::Unrelated("a response with another request id")
        );
        assert_eq!(
            read(&response(7, b"privat", 0, &[(ours, int(1))])),
            Reply::Unrelated("a response with another community")
        );
        assert_eq!(
            read(&response(7, b"public", 0, &[(other.as_bytes(), int(1))])),
            Reply::Answer(Err(ReplyError::WrongOid {
                asked: "1.3.6.1.4.1.318.1.1.4.4.2.1.3.1".into(),
                got: "1.3.6.1.2.1.1.5.0".into()
            }))
        );
        let mut string = Vec::new();
        tlv(TAG_OCTET_STRING, b"on", &mut string);
        assert!(matches!(
            read(&response(7, b"public", 0, &[(ours, string.clone())])),
            Reply::Answer(Err(ReplyError::NotInteger {
                what: "a string",
                ..
            }))
        ));
        assert!(matches!(
            read(&response(7, b"public", 0, &[(ours, vec![0x80, 0])])),
            Reply::Answer(Err(ReplyError::NoSuchOutlet { .. }))
        ));
        assert_eq!(
            read(&response(7, b"public", 0, &[])),
            Reply::Answer(Err(ReplyError::Count { got: 0, want: 1 }))
        );
        assert_eq!(
            read(&response(
                7,
                b"public",
                0,
                &[(ours, int(1)), (ours, int(2))]
            )),
            Reply::Answer(Err(ReplyError::Count { got: 2, want: 1 }))
        );
        assert_eq!(
            read(&response(7, b"public", 5, &[(ours, int(1))])),
            Reply::Answer(Err(ReplyError::Refused { code: 5 }))
        );
        // An integer of nine bytes, and 60,000 bindings in one datagram.
        let mut huge = vec![TAG_INTEGER, 9];
        huge.extend_from_slice(&[0x7f; 9]);
        assert!(matches!(
            read(&response(7, b"public", 0, &[(ours, huge.clone())])),
            Reply::Answer(Err(_))
        ));
        let many: Vec<(&[u8], Vec<u8>)> = (0..6000).map(|_| (ours, vec![0x05u8, 0])).collect();
        let big = response(7, b"public", 0, &many);
        assert!(big.len() > 60_000);
        assert!(matches!(read(&big), Reply::Answer(Err(_))));
        // A request instead of a response, random bytes, and an OID of 60 KB.
        let request = encode_request(b"public", 7, RequestKind::Get, &oids, &[]);
        assert_eq!(
            read(&request),
            Reply::Unrelated("an SNMP message that is not a response")
        );
        let mut seed = 0x2545_f491_u32;
        for _ in 0..2000 {
            let len = (seed % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = read(&bytes);
        }
        let long_oid = vec![0x81u8; 60_000];
        let got = read(&response(7, b"public", 0, &[(&long_oid[..], int(1))]));
        let Reply::Answer(Err(ReplyError::WrongOid { got, .. })) = got else {
            panic!("{got:?}")
        };
        assert!(got.len() < 100, "{got}");
    }
}
