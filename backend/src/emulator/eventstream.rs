//! The `application/vnd.amazon.eventstream` binary framing, encoded byte-exact.
//!
//! A message is `[total length u32][headers length u32][prelude CRC32][headers][payload][message CRC32]`,
//! all big-endian, CRCs being IEEE CRC-32 (the prelude CRC covers the first 8 bytes, the message CRC
//! everything before it). The AWS SDK decodes what [`encode_str_headers`] writes.
//!
//! The emulator only ever sends string headers, so that is all the production encoder takes. The
//! typed `Message` model, its owned encoder and the decoder are test-only: with them tests read the
//! emulator's streams without the SDK, check every header type against the SDK's own framing, and
//! fuzz the decoder.

use bytes::{BufMut, BytesMut};

/// Bytes before the headers: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// The trailing message CRC.
const TRAILER_LEN: usize = 4;
/// Smallest possible message: a prelude and a trailer, nothing else.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + TRAILER_LEN;
/// The largest message AWS accepts (16 MiB payload plus 128 KiB of headers); larger lengths are
/// rejected up front so a corrupted length never makes us wait for, or allocate, gigabytes.
const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024 + 128 * 1024 + MIN_MESSAGE_LEN;
/// The largest headers section AWS accepts.
const MAX_HEADERS_LEN: usize = 128 * 1024;
/// The wire type tag of a string header value.
const STRING_TAG: u8 = 7;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[expect(clippy::enum_variant_names, reason = "each variant names the part that is over its limit")]
pub(crate) enum EncodeError {
    /// Header names are length-prefixed by one byte.
    #[error("header name is {0} bytes, the limit is 255")]
    NameTooLong(usize),
    /// String and byte-array values are length-prefixed by two bytes.
    #[error("header value is {0} bytes, the limit is 65535")]
    ValueTooLong(usize),
    #[error("headers are {0} bytes, the limit is {MAX_HEADERS_LEN}")]
    HeadersTooLong(usize),
    #[error("message would be {0} bytes, the limit is {MAX_MESSAGE_LEN}")]
    MessageTooLong(usize),
}

/// A string header borrowed, as the emulator's hot path writes them: owning names would only cost allocations.
pub(crate) type StrHeader<'a> = (&'a str, &'a str);

/// Appends a message with string headers only.
pub(crate) fn encode_str_headers(
    buf: &mut BytesMut,
    headers: &[StrHeader<'_>],
    payload: &[u8],
) -> Result<(), EncodeError> {
    let mut headers_len = 0;
    for (name, value) in headers {
        check_name(name)?;
        check_value_len(value.len())?;
        headers_len += 1 + name.len() + 1 + 2 + value.len();
    }
    let start = begin(buf, headers_len, payload.len())?;
    for (name, value) in headers {
        put_name(buf, name);
        put_string(buf, STRING_TAG, value.as_bytes());
    }
    finish(buf, start, payload);
    Ok(())
}

/// Checks the sizes, reserves room and writes the prelude; returns where the message starts.
fn begin(buf: &mut BytesMut, headers_len: usize, payload_len: usize) -> Result<usize, EncodeError> {
    if headers_len > MAX_HEADERS_LEN {
        return Err(EncodeError::HeadersTooLong(headers_len));
    }
    let total = MIN_MESSAGE_LEN + headers_len + payload_len;
    if total > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong(total));
    }
    buf.reserve(total);
    let start = buf.len();
    // Both fit in u32: they are bounded by MAX_MESSAGE_LEN above.
    buf.put_u32(total as u32);
    buf.put_u32(headers_len as u32);
    let prelude_crc = crc32fast::hash(&buf[start..start + 8]);
    buf.put_u32(prelude_crc);
    Ok(start)
}

/// Writes the payload and the message CRC over everything from `start`.
fn finish(buf: &mut BytesMut, start: usize, payload: &[u8]) {
    buf.put_slice(payload);
    let crc = crc32fast::hash(&buf[start..]);
    buf.put_u32(crc);
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.len() > usize::from(u8::MAX) { Err(EncodeError::NameTooLong(name.len())) } else { Ok(()) }
}

fn check_value_len(len: usize) -> Result<(), EncodeError> {
    if len > usize::from(u16::MAX) { Err(EncodeError::ValueTooLong(len)) } else { Ok(()) }
}

fn put_name(buf: &mut BytesMut, name: &str) {
    // Length checked by `check_name` before anything was written.
    buf.put_u8(name.len() as u8);
    buf.put_slice(name.as_bytes());
}

fn put_string(buf: &mut BytesMut, tag: u8, bytes: &[u8]) {
    buf.put_u8(tag);
    // Length checked by `check_value_len` before anything was written.
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

#[cfg(test)]
pub(crate) use message::{DecodeError, Header, HeaderValue, Message, decode, decode_all, encode, encode_into};

/// Whole messages as values, every header type included: the owned encoder and the decoder.
#[cfg(test)]
mod message {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::{
        EncodeError, MAX_HEADERS_LEN, MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, PRELUDE_LEN, TRAILER_LEN, begin, check_name,
        check_value_len, finish, put_name, put_string,
    };

    /// The value of one header, one variant per wire type tag (0 to 9).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum HeaderValue {
        /// Tags 0 (true) and 1 (false): no value bytes.
        Bool(bool),
        /// Tag 2: one signed byte.
        Byte(i8),
        /// Tag 3: big-endian i16.
        Int16(i16),
        /// Tag 4: big-endian i32.
        Int32(i32),
        /// Tag 5: big-endian i64.
        Int64(i64),
        /// Tag 6: u16 length then raw bytes.
        ByteArray(Bytes),
        /// Tag 7: u16 length then UTF-8; what Bedrock uses for every header it sends.
        String(String),
        /// Tag 8: milliseconds since the Unix epoch, big-endian i64.
        Timestamp(i64),
        /// Tag 9: 16 raw bytes.
        Uuid(u128),
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Header {
        /// The name, at most 255 bytes of UTF-8.
        pub(crate) name: String,
        pub(crate) value: HeaderValue,
    }

    impl Header {
        /// A string-valued header, the only kind Bedrock sends.
        pub(crate) fn string(name: impl Into<String>, value: impl Into<String>) -> Self {
            Header { name: name.into(), value: HeaderValue::String(value.into()) }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub(crate) struct Message {
        /// Headers in wire order.
        pub(crate) headers: Vec<Header>,
        /// The payload, opaque to the framing.
        pub(crate) payload: Bytes,
    }

    impl Message {
        /// The string value of the first header with that name.
        pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|h| h.name == name).and_then(|h| match &h.value {
                HeaderValue::String(s) => Some(s.as_str()),
                _ => None,
            })
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub(crate) enum DecodeError {
        /// Fewer bytes than the prelude or the declared total length.
        #[error("truncated message: need {needed} bytes, have {available}")]
        Truncated { needed: usize, available: usize },
        /// The prelude's lengths are impossible (too small, too large, or inconsistent).
        #[error("invalid lengths in prelude: total {total}, headers {headers}")]
        InvalidLength { total: u32, headers: u32 },
        /// The prelude CRC does not match its 8 bytes.
        #[error("prelude checksum mismatch: expected {expected:#010x}, computed {computed:#010x}")]
        PreludeChecksum { expected: u32, computed: u32 },
        #[error("message checksum mismatch: expected {expected:#010x}, computed {computed:#010x}")]
        MessageChecksum { expected: u32, computed: u32 },
        #[error("header truncated at offset {0} of the headers section")]
        HeaderTruncated(usize),
        /// A header name or string value is not UTF-8.
        #[error("header at offset {0} is not valid UTF-8")]
        InvalidUtf8(usize),
        /// A value type tag outside 0 to 9.
        #[error("unknown header value type {0}")]
        UnknownValueType(u8),
        #[error("empty header name at offset {0}")]
        EmptyHeaderName(usize),
    }

    pub(crate) fn encode(message: &Message) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        encode_into(&mut buf, message)?;
        Ok(buf.freeze())
    }

    /// Appends the encoding of `message` to `buf`.
    pub(crate) fn encode_into(buf: &mut BytesMut, message: &Message) -> Result<(), EncodeError> {
        let headers_len = message
            .headers
            .iter()
            .map(|h| header_len(&h.name, &h.value))
            .try_fold(0usize, |acc, len| len.map(|len| acc + len))?;
        let start = begin(buf, headers_len, message.payload.len())?;
        for header in &message.headers {
            put_name(buf, &header.name);
            put_value(buf, &header.value);
        }
        finish(buf, start, &message.payload);
        Ok(())
    }

    /// Encoded length of one header, after checking its limits.
    fn header_len(name: &str, value: &HeaderValue) -> Result<usize, EncodeError> {
        check_name(name)?;
        let value_len = match value {
            HeaderValue::Bool(_) => 0,
            HeaderValue::Byte(_) => 1,
            HeaderValue::Int16(_) => 2,
            HeaderValue::Int32(_) => 4,
            HeaderValue::Int64(_) | HeaderValue::Timestamp(_) => 8,
            HeaderValue::ByteArray(b) => {
                check_value_len(b.len())?;
                2 + b.len()
            }
            HeaderValue::String(s) => {
                check_value_len(s.len())?;
                2 + s.len()
            }
            HeaderValue::Uuid(_) => 16,
        };
        Ok(1 + name.len() + 1 + value_len)
    }

    fn put_value(buf: &mut BytesMut, value: &HeaderValue) {
        match value {
            HeaderValue::Bool(true) => buf.put_u8(0),
            HeaderValue::Bool(false) => buf.put_u8(1),
            HeaderValue::Byte(v) => {
                buf.put_u8(2);
                buf.put_i8(*v);
            }
            HeaderValue::Int16(v) => {
                buf.put_u8(3);
                buf.put_i16(*v);
            }
            HeaderValue::Int32(v) => {
                buf.put_u8(4);
                buf.put_i32(*v);
            }
            HeaderValue::Int64(v) => {
                buf.put_u8(5);
                buf.put_i64(*v);
            }
            HeaderValue::ByteArray(b) => put_string(buf, 6, b),
            HeaderValue::String(s) => put_string(buf, 7, s.as_bytes()),
            HeaderValue::Timestamp(v) => {
                buf.put_u8(8);
                buf.put_i64(*v);
            }
            HeaderValue::Uuid(v) => {
                buf.put_u8(9);
                buf.put_u128(*v);
            }
        }
    }

    /// Decodes the first message of `input`; returns it with the bytes that follow it.
    pub(crate) fn decode(input: &[u8]) -> Result<(Message, &[u8]), DecodeError> {
        let available = input.len();
        let Some(prelude) = input.get(..PRELUDE_LEN) else {
            return Err(DecodeError::Truncated { needed: PRELUDE_LEN, available });
        };
        let total = be_u32(&prelude[0..4]);
        let headers_len = be_u32(&prelude[4..8]);
        let expected = be_u32(&prelude[8..12]);
        let computed = crc32fast::hash(&prelude[..8]);
        // The prelude CRC is checked before the lengths are trusted, as the SDK does.
        if expected != computed {
            return Err(DecodeError::PreludeChecksum { expected, computed });
        }
        let (total_usize, headers_usize) = (total as usize, headers_len as usize);
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&total_usize)
            || headers_usize > MAX_HEADERS_LEN
            || headers_usize > total_usize - MIN_MESSAGE_LEN
        {
            return Err(DecodeError::InvalidLength { total, headers: headers_len });
        }
        let Some(frame) = input.get(..total_usize) else {
            return Err(DecodeError::Truncated { needed: total_usize, available });
        };
        let body_end = total_usize - TRAILER_LEN;
        let expected = be_u32(&frame[body_end..]);
        let computed = crc32fast::hash(&frame[..body_end]);
        if expected != computed {
            return Err(DecodeError::MessageChecksum { expected, computed });
        }
        let headers = decode_headers(&frame[PRELUDE_LEN..PRELUDE_LEN + headers_usize])?;
        let payload = Bytes::copy_from_slice(&frame[PRELUDE_LEN + headers_usize..body_end]);
        Ok((Message { headers, payload }, &input[total_usize..]))
    }

    /// Decodes every message of `input`, which must hold whole messages only.
    pub(crate) fn decode_all(mut input: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let mut messages = Vec::new();
        while !input.is_empty() {
            let (message, rest) = decode(input)?;
            messages.push(message);
            input = rest;
        }
        Ok(messages)
    }

    fn be_u32(bytes: &[u8]) -> u32 {
        bytes.iter().fold(0, |acc, b| (acc << 8) | u32::from(*b))
    }

    /// Reads fixed-size and length-prefixed fields from the headers section, never past its end.
    struct Cursor<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            let slice = self.bytes.get(self.pos..self.pos + n).ok_or(DecodeError::HeaderTruncated(self.pos))?;
            self.pos += n;
            Ok(slice)
        }

        fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
            let mut out = [0; N];
            out.copy_from_slice(self.take(N)?);
            Ok(out)
        }

        fn prefixed16(&mut self) -> Result<&'a [u8], DecodeError> {
            let len = u16::from_be_bytes(self.array()?);
            self.take(usize::from(len))
        }
    }

    fn decode_headers(bytes: &[u8]) -> Result<Vec<Header>, DecodeError> {
        let mut cursor = Cursor { bytes, pos: 0 };
        let mut headers = Vec::new();
        while cursor.pos < bytes.len() {
            let at = cursor.pos;
            let [name_len] = cursor.array()?;
            if name_len == 0 {
                return Err(DecodeError::EmptyHeaderName(at));
            }
            let name =
                std::str::from_utf8(cursor.take(usize::from(name_len))?).map_err(|_| DecodeError::InvalidUtf8(at))?;
            let [tag] = cursor.array()?;
            let value = match tag {
                0 => HeaderValue::Bool(true),
                1 => HeaderValue::Bool(false),
                2 => HeaderValue::Byte(i8::from_be_bytes(cursor.array()?)),
                3 => HeaderValue::Int16(i16::from_be_bytes(cursor.array()?)),
                4 => HeaderValue::Int32(i32::from_be_bytes(cursor.array()?)),
                5 => HeaderValue::Int64(i64::from_be_bytes(cursor.array()?)),
                6 => HeaderValue::ByteArray(Bytes::copy_from_slice(cursor.prefixed16()?)),
                7 => HeaderValue::String(
                    std::str::from_utf8(cursor.prefixed16()?).map_err(|_| DecodeError::InvalidUtf8(at))?.to_owned(),
                ),
                8 => HeaderValue::Timestamp(i64::from_be_bytes(cursor.array()?)),
                9 => HeaderValue::Uuid(u128::from_be_bytes(cursor.array()?)),
                other => return Err(DecodeError::UnknownValueType(other)),
            };
            headers.push(Header { name: name.to_owned(), value });
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn bedrock_event(event_type: &str, payload: &str) -> Message {
        Message {
            headers: vec![
                Header::string(":event-type", event_type),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "event"),
            ],
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    #[test]
    fn an_encoded_message_decodes_to_itself_with_nothing_left_over() {
        let message = bedrock_event("messageStart", r#"{"role":"assistant"}"#);
        let bytes = encode(&message).expect("encodes");
        let (back, rest) = decode(&bytes).expect("decodes");
        assert_eq!(back, message);
        assert!(rest.is_empty());
    }

    #[test]
    fn the_borrowed_header_encoder_writes_the_same_bytes_as_the_owned_one() {
        let message = bedrock_event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        let mut buf = BytesMut::new();
        encode_str_headers(
            &mut buf,
            &[(":event-type", "contentBlockDelta"), (":content-type", "application/json"), (":message-type", "event")],
            &message.payload,
        )
        .expect("encodes");
        assert_eq!(buf.freeze(), encode(&message).expect("encodes"));
    }

    #[test]
    fn an_empty_message_is_sixteen_bytes_with_known_checksums() {
        // Vector from the AWS event-stream test suite ("empty_message").
        let expected: [u8; 16] = [0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff];
        assert_eq!(&encode(&Message::default()).expect("encodes")[..], &expected);
        assert_eq!(decode(&expected).expect("decodes").0, Message::default());
    }

    #[test]
    fn the_aws_sdk_decoder_reads_what_we_encode() {
        let message = bedrock_event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hello"}}"#);
        let bytes = encode(&message).expect("encodes");
        let theirs = aws_smithy_eventstream::frame::read_message_from(&bytes[..]).expect("sdk decodes");
        assert_eq!(&theirs.payload()[..], &message.payload[..]);
        let headers: Vec<(String, String)> = theirs
            .headers()
            .iter()
            .map(|h| {
                (h.name().as_str().to_owned(), h.value().as_string().map(|s| s.as_str().to_owned()).unwrap_or_default())
            })
            .collect();
        assert_eq!(
            headers,
            [
                (":event-type".to_owned(), "contentBlockDelta".to_owned()),
                (":content-type".to_owned(), "application/json".to_owned()),
                (":message-type".to_owned(), "event".to_owned()),
            ]
        );
    }

    #[test]
    fn we_decode_what_the_aws_sdk_encodes_with_every_header_type() {
        use aws_smithy_types::event_stream::{Header as TheirHeader, HeaderValue as V, Message as TheirMessage};
        let theirs = TheirMessage::new(&b"payload"[..])
            .add_header(TheirHeader::new("t", V::Bool(true)))
            .add_header(TheirHeader::new("f", V::Bool(false)))
            .add_header(TheirHeader::new("b", V::Byte(-3)))
            .add_header(TheirHeader::new("s", V::Int16(-300)))
            .add_header(TheirHeader::new("i", V::Int32(70_000)))
            .add_header(TheirHeader::new("l", V::Int64(-5_000_000_000)))
            .add_header(TheirHeader::new("a", V::ByteArray(Bytes::from_static(b"\x00\x01"))))
            .add_header(TheirHeader::new("str", V::String("value".into())))
            .add_header(TheirHeader::new("u", V::Uuid(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)));
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&theirs, &mut bytes).expect("sdk encodes");
        let (ours, _) = decode(&bytes).expect("decodes");
        let expected = vec![
            Header { name: "t".into(), value: HeaderValue::Bool(true) },
            Header { name: "f".into(), value: HeaderValue::Bool(false) },
            Header { name: "b".into(), value: HeaderValue::Byte(-3) },
            Header { name: "s".into(), value: HeaderValue::Int16(-300) },
            Header { name: "i".into(), value: HeaderValue::Int32(70_000) },
            Header { name: "l".into(), value: HeaderValue::Int64(-5_000_000_000) },
            Header { name: "a".into(), value: HeaderValue::ByteArray(Bytes::from_static(b"\x00\x01")) },
            Header::string("str", "value"),
            Header { name: "u".into(), value: HeaderValue::Uuid(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10) },
        ];
        assert_eq!(ours.headers, expected);
        assert_eq!(&ours.payload[..], b"payload");
        // And byte-exact the other way round.
        assert_eq!(&encode(&ours).expect("encodes")[..], &bytes[..]);
    }

    #[test]
    fn a_corrupted_message_checksum_is_rejected() {
        let mut bytes = encode(&bedrock_event("messageStop", "{}")).expect("encodes").to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(decode(&bytes), Err(DecodeError::MessageChecksum { .. })));
    }

    #[test]
    fn a_corrupted_payload_byte_is_rejected() {
        let mut bytes = encode(&bedrock_event("messageStop", "{}")).expect("encodes").to_vec();
        let payload_at = bytes.len() - 5;
        bytes[payload_at] ^= 0x01;
        assert!(matches!(decode(&bytes), Err(DecodeError::MessageChecksum { .. })));
    }

    #[test]
    fn a_corrupted_prelude_is_rejected() {
        let mut bytes = encode(&bedrock_event("messageStop", "{}")).expect("encodes").to_vec();
        bytes[3] ^= 0x01;
        assert!(matches!(decode(&bytes), Err(DecodeError::PreludeChecksum { .. })));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&bedrock_event("metadata", r#"{"usage":{}}"#)).expect("encodes");
        for len in 0..bytes.len() {
            assert!(matches!(decode(&bytes[..len]), Err(DecodeError::Truncated { .. })), "length {len}");
        }
    }

    #[test]
    fn consecutive_messages_decode_in_order() {
        let first = bedrock_event("messageStart", "{}");
        let second = bedrock_event("messageStop", "{}");
        let mut buf = BytesMut::new();
        encode_into(&mut buf, &first).expect("encodes");
        encode_into(&mut buf, &second).expect("encodes");
        assert_eq!(decode_all(&buf).expect("decodes"), vec![first, second]);
    }

    #[test]
    fn oversized_names_and_values_are_refused_when_encoding() {
        let long_name = Message { headers: vec![Header::string("n".repeat(256), "v")], payload: Bytes::new() };
        assert_eq!(encode(&long_name), Err(EncodeError::NameTooLong(256)));
        let long_value = Message { headers: vec![Header::string("n", "v".repeat(70_000))], payload: Bytes::new() };
        assert_eq!(encode(&long_value), Err(EncodeError::ValueTooLong(70_000)));
    }

    fn header_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            any::<bool>().prop_map(HeaderValue::Bool),
            any::<i8>().prop_map(HeaderValue::Byte),
            any::<i16>().prop_map(HeaderValue::Int16),
            any::<i32>().prop_map(HeaderValue::Int32),
            any::<i64>().prop_map(HeaderValue::Int64),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| HeaderValue::ByteArray(Bytes::from(v))),
            ".{0,40}".prop_map(HeaderValue::String),
            any::<i64>().prop_map(HeaderValue::Timestamp),
            any::<u128>().prop_map(HeaderValue::Uuid),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        let header = ("[a-z:-]{1,20}", header_value()).prop_map(|(name, value)| Header { name, value });
        (proptest::collection::vec(header, 0..6), proptest::collection::vec(any::<u8>(), 0..256))
            .prop_map(|(headers, payload)| Message { headers, payload: Bytes::from(payload) })
    }

    proptest! {
        #[test]
        fn decoding_an_encoded_message_gives_it_back(message in message()) {
            let bytes = encode(&message).expect("encodes");
            let (back, rest) = decode(&bytes).expect("decodes");
            prop_assert_eq!(back, message);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_a_mutated_message_never_panics(message in message(), at in any::<usize>(), xor in 1u8..) {
            let mut bytes = encode(&message).expect("encodes").to_vec();
            let at = at % bytes.len();
            bytes[at] ^= xor;
            // A flipped byte must never decode to the original message.
            if let Ok((back, _)) = decode(&bytes) {
                prop_assert_ne!(back, message);
            }
        }
    }
}
