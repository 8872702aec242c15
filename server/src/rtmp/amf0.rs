//! AMF0, the encoding of RTMP commands and data messages: a bounded decoder
//! for what a peer sends and an encoder for what Tinsel answers (pure).
//!
//! The decoder reads only the types RTMP commands and `onMetaData` use (AMF0
//! spec, 2.2 to 2.14: number, boolean, string, object, null, undefined, ECMA
//! array, strict array, date, long string); any other marker (reference,
//! movie clip, XML, typed object, the AMF3 switch) is an error. Nothing it
//! allocates is sized by a length the peer announced: every string is checked
//! against the bytes actually present before it is copied, and nesting depth
//! and the number of values are capped ([`Amf0Limits`]), so a message of
//! nested arrays costs a bounded stack and a bounded heap whatever it holds.

use thiserror::Error;

/// One AMF0 value. Objects keep their properties in the order sent, as
/// pairs: RTMP objects are small, and a list costs no hashing.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch (the time zone field is ignored, as
    /// the spec says it should be).
    Date(f64),
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The properties of an object or an ECMA array (encoders send
    /// `onMetaData` as either).
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Self::Object(properties) | Self::EcmaArray(properties) => Some(properties),
            _ => None,
        }
    }

    /// The first property named `key`, for an object or an ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find_map(|(name, value)| (name == key).then_some(value))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 data ends inside a value (at byte {at})")]
    Truncated { at: usize },
    #[error("AMF0 type marker {marker:#04x} at byte {at} is not one RTMP commands use")]
    UnknownMarker { marker: u8, at: usize },
    #[error("AMF0 values nested deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("more than {max} AMF0 values in one message")]
    TooManyValues { max: usize },
}

/// What one message may cost the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amf0Limits {
    /// Objects and arrays inside each other. Each level is a stack frame of
    /// the decoder, so this is what keeps a hostile message from overflowing
    /// the stack.
    pub max_depth: usize,
    /// Values in the whole message, counting each property and element. A
    /// null is one byte on the wire and a few dozen in memory; this caps the
    /// ratio's reach.
    pub max_values: usize,
}

/// The limits for RTMP commands and `onMetaData`. OBS, FFmpeg, Larix and the
/// Flash-era clients nest two levels at most (a command object, or the
/// metadata's ECMA array) and send a few dozen values.
pub const COMMAND_LIMITS: Amf0Limits = Amf0Limits {
    max_depth: 8,
    max_values: 1024,
};

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// Decodes every value in `bytes` (an RTMP command or data message body).
///
/// # Errors
/// Truncated data, a type RTMP does not use, or a limit exceeded.
pub fn decode_all(bytes: &[u8], limits: &Amf0Limits) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut decoder = Decoder {
        bytes,
        at: 0,
        values: 0,
        limits,
    };
    let mut values = Vec::new();
    while decoder.at < bytes.len() {
        values.push(decoder.value(0)?);
    }
    Ok(values)
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    values: usize,
    limits: &'a Amf0Limits,
}

impl Decoder<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], Amf0Error> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(Amf0Error::Truncated { at: self.at })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let bytes = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_be_bytes(array))
    }

    /// A string of `len` bytes; `take` has checked they are all here before
    /// anything is allocated. Encoders are not all careful with UTF-8
    /// (encoder names, titles), so bad sequences become U+FFFD rather than
    /// refusing the message.
    fn text(&mut self, len: usize) -> Result<String, Amf0Error> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn count(&mut self) -> Result<(), Amf0Error> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues {
                max: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        self.count()?;
        let at = self.at;
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64()?),
            BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            STRING => {
                let len = self.u16()?;
                Amf0Value::String(self.text(len.into())?)
            }
            LONG_STRING => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated { at })?;
                Amf0Value::String(self.text(len)?)
            }
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            OBJECT => Amf0Value::Object(self.properties(depth + 1)?),
            ECMA_ARRAY => {
                // The count is only a hint (encoders get it wrong); the end
                // marker is what ends the array.
                self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth + 1)?)
            }
            STRICT_ARRAY => {
                let count = self.u32()?;
                self.nest(depth + 1)?;
                // Every element takes at least one byte, so the bytes left
                // bound the loop whatever the count says; nothing is reserved
                // by the count.
                let mut elements = Vec::new();
                for _ in 0..count {
                    elements.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(elements)
            }
            DATE => {
                let millis = self.f64()?;
                self.u16()?;
                Amf0Value::Date(millis)
            }
            marker => return Err(Amf0Error::UnknownMarker { marker, at }),
        })
    }

    fn nest(&self, depth: usize) -> Result<(), Amf0Error> {
        if depth > self.limits.max_depth {
            return Err(Amf0Error::TooDeep {
                max: self.limits.max_depth,
            });
        }
        Ok(())
    }

    /// Properties up to the object end marker (an empty key, then 0x09). An
    /// ECMA array cut off right after a property is taken as ended: some
    /// encoders leave the marker out.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        self.nest(depth)?;
        let mut properties = Vec::new();
        loop {
            if self.at == self.bytes.len() {
                return Ok(properties);
            }
            let len = self.u16()?;
            if len == 0 && self.bytes.get(self.at) == Some(&OBJECT_END) {
                self.at += 1;
                return Ok(properties);
            }
            let key = self.text(len.into())?;
            let value = self.value(depth)?;
            properties.push((key, value));
        }
    }
}

/// Encodes values for a message Tinsel sends.
pub fn encode(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        encode_value(&mut out, value);
    }
    out
}

fn encode_value(out: &mut Vec<u8>, value: &Amf0Value) {
    match value {
        Amf0Value::Number(number) => {
            out.push(NUMBER);
            out.extend_from_slice(&number.to_be_bytes());
        }
        Amf0Value::Boolean(value) => out.extend_from_slice(&[BOOLEAN, u8::from(*value)]),
        Amf0Value::String(text) => match u16::try_from(text.len()) {
            Ok(len) => {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Err(_) => {
                out.push(LONG_STRING);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        },
        Amf0Value::Object(properties) => {
            out.push(OBJECT);
            encode_properties(out, properties);
        }
        Amf0Value::Null => out.push(NULL),
        Amf0Value::Undefined => out.push(UNDEFINED),
        Amf0Value::EcmaArray(properties) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(properties.len() as u32).to_be_bytes());
            encode_properties(out, properties);
        }
        Amf0Value::StrictArray(elements) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(elements.len() as u32).to_be_bytes());
            for element in elements {
                encode_value(out, element);
            }
        }
        Amf0Value::Date(millis) => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// Keys are Tinsel's own short names; one longer than a u16 would be a
/// programming error, and is cut rather than written wrong.
fn encode_properties(out: &mut Vec<u8>, properties: &[(String, Amf0Value)]) {
    for (key, value) in properties {
        let key = &key.as_bytes()[..key.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        encode_value(out, value);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
        decode_all(bytes, &COMMAND_LIMITS)
    }

    #[test]
    fn round_trips_what_rtmp_commands_carry() {
        let values = vec![
            Amf0Value::String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![
                ("app".into(), Amf0Value::String("live".into())),
                ("fpad".into(), Amf0Value::Boolean(false)),
                ("none".into(), Amf0Value::Null),
                ("undefined".into(), Amf0Value::Undefined),
            ]),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(1920.0))]),
            Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null]),
            Amf0Value::Date(1.5e12),
            Amf0Value::String("x".repeat(70_000)),
        ];
        assert_eq!(decode(&encode(&values)).unwrap(), values);
    }

    #[test]
    fn reads_what_rml_amf0_writes() {
        use rml_amf0::Amf0Value as Rml;
        let mut properties = std::collections::HashMap::new();
        properties.insert("app".to_string(), Rml::Utf8String("live".into()));
        let bytes = rml_amf0::serialize(&vec![
            Rml::Utf8String("connect".into()),
            Rml::Number(1.0),
            Rml::Object(properties),
        ])
        .unwrap();
        let values = decode(&bytes).unwrap();
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // About 1 MB of strict arrays, each holding the next: what took the
        // whole process down through rml_amf0.
        let mut bytes = Vec::new();
        for _ in 0..200_000 {
            bytes.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        bytes.push(NULL);
        assert_eq!(decode(&bytes), Err(Amf0Error::TooDeep { max: 8 }));
        let mut objects = Vec::new();
        for _ in 0..200_000 {
            objects.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert_eq!(decode(&objects), Err(Amf0Error::TooDeep { max: 8 }));
    }

    #[test]
    fn nesting_within_the_limit_decodes() {
        let mut value = Amf0Value::Null;
        for _ in 0..COMMAND_LIMITS.max_depth {
            value = Amf0Value::StrictArray(vec![value]);
        }
        assert_eq!(decode(&encode(&[value.clone()])).unwrap(), vec![value]);
    }

    #[test]
    fn too_many_values_is_an_error() {
        let bytes = vec![NULL; 5000];
        assert_eq!(decode(&bytes), Err(Amf0Error::TooManyValues { max: 1024 }));
    }

    #[test]
    fn announced_lengths_are_checked_against_the_bytes_present() {
        // A long string announcing 4 GiB, with five bytes behind it.
        let bytes = [
            LONG_STRING,
            0xff,
            0xff,
            0xff,
            0xff,
            b'a',
            b'b',
            b'c',
            b'd',
            b'e',
        ];
        assert_eq!(decode(&bytes), Err(Amf0Error::Truncated { at: 5 }));
        // A strict array announcing 4 billion elements holds one.
        let bytes = [STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL];
        assert_eq!(decode(&bytes), Err(Amf0Error::Truncated { at: 6 }));
        assert_eq!(
            decode(&[STRING, 0, 9, b'a']),
            Err(Amf0Error::Truncated { at: 3 })
        );
        assert_eq!(decode(&[NUMBER, 0, 0]), Err(Amf0Error::Truncated { at: 1 }));
    }

    #[test]
    fn markers_rtmp_does_not_use_are_errors() {
        for marker in [0x04, 0x07, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0xff] {
            assert_eq!(
                decode(&[marker, 0, 0]),
                Err(Amf0Error::UnknownMarker { marker, at: 0 })
            );
        }
    }

    #[test]
    fn an_ecma_array_without_its_end_marker_ends_with_the_message() {
        let mut bytes = vec![ECMA_ARRAY, 0, 0, 0, 1, 0, 1, b'w', NUMBER];
        bytes.extend_from_slice(&640f64.to_be_bytes());
        let values = decode(&bytes).unwrap();
        assert_eq!(
            values[0].get("w").and_then(Amf0Value::as_number),
            Some(640.0)
        );
    }

    #[test]
    fn bad_utf8_is_replaced_not_refused() {
        let values = decode(&[STRING, 0, 2, 0xff, b'a']).unwrap();
        assert_eq!(values[0].as_str(), Some("\u{fffd}a"));
    }

    #[test]
    fn empty_input_is_no_values() {
        assert_eq!(decode(&[]).unwrap(), Vec::<Amf0Value>::new());
    }
}
