//! Ingest parsing: a request body becomes a bounded list of events, or a clear error.
//!
//! Accepted bodies (spec §3.1): one JSON object, a JSON array of events, or NDJSON. Each event
//! is checked against [`Limits`] — size, nesting depth, key count, string length — so that no
//! request can exhaust memory or stack further down. A batch is all-or-nothing: one bad event
//! refuses the whole body.
//!
//! Parsing keeps the client's JSON text instead of building a tree: `serde_json` validates the
//! syntax into borrowed [`RawValue`]s and a single byte scan enforces the limits and finds the
//! top-level `timestamp`, which is the only field the server needs to read.

use serde_json::value::RawValue;

use crate::time::parse_json_time;

/// Bounds on what one request may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Body size after decompression.
    pub max_body_bytes: usize,
    /// Events in one request.
    pub max_batch_events: usize,
    /// Serialized size of one event.
    pub max_event_bytes: usize,
    /// Nesting depth of objects and arrays within one event.
    pub max_depth: usize,
    /// Object keys within one event, counted over all levels.
    pub max_keys: usize,
    /// Length of one string (key or value) in bytes, as sent.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_batch_events: 10_000,
            max_event_bytes: 1024 * 1024,
            max_depth: 64,
            max_keys: 10_000,
            max_string_bytes: 512 * 1024,
        }
    }
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON value: an object (one event) or an array (a batch).
    Json,
    /// Newline-delimited JSON, one event per non-empty line.
    Ndjson,
}

/// One event ready for storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's own time in epoch ms, when it carried a valid top-level `timestamp`.
    pub timestamp: Option<i64>,
    /// The event as a compact JSON object (non-objects are wrapped as `{"data": value}`).
    pub data: Vec<u8>,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    /// The body is not valid JSON or NDJSON; the message names the line or byte offset.
    #[error("{0}")]
    InvalidJson(String),
    /// The body held no event.
    #[error("the request holds no event")]
    Empty,
    /// More events than [`Limits::max_batch_events`].
    #[error("batch holds more than {max} events")]
    TooManyEvents { max: usize },
    /// One event is larger than [`Limits::max_event_bytes`].
    #[error("event {index} is larger than {max} bytes")]
    EventTooLarge { index: usize, max: usize },
    /// One event breaks a structural bound (depth, keys, string length).
    #[error("event {index}: {what}")]
    TooComplex { index: usize, what: String },
}

/// Parses a request body into events, enforcing `limits`.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<NewEvent>, IngestError> {
    let raws = match format {
        BodyFormat::Json => split_json(body, limits)?,
        BodyFormat::Ndjson => split_ndjson(body, limits)?,
    };
    if raws.is_empty() {
        return Err(IngestError::Empty);
    }
    raws.into_iter()
        .enumerate()
        .map(|(index, raw)| build_event(index, raw, limits))
        .collect()
}

fn split_json<'a>(body: &'a [u8], limits: &Limits) -> Result<Vec<&'a RawValue>, IngestError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let raws: Vec<&RawValue> = serde_json::from_slice(body).map_err(json_error)?;
        if raws.len() > limits.max_batch_events {
            return Err(IngestError::TooManyEvents {
                max: limits.max_batch_events,
            });
        }
        Ok(raws)
    } else {
        let raw: &RawValue = serde_json::from_slice(body).map_err(json_error)?;
        Ok(vec![raw])
    }
}

fn split_ndjson<'a>(body: &'a [u8], limits: &Limits) -> Result<Vec<&'a RawValue>, IngestError> {
    let mut out = Vec::new();
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == limits.max_batch_events {
            return Err(IngestError::TooManyEvents {
                max: limits.max_batch_events,
            });
        }
        let raw: &RawValue = serde_json::from_slice(line).map_err(|e| {
            IngestError::InvalidJson(format!("line {}: {}", n + 1, strip_position(&e)))
        })?;
        out.push(raw);
    }
    Ok(out)
}

fn json_error(e: serde_json::Error) -> IngestError {
    IngestError::InvalidJson(format!(
        "{} (line {}, column {})",
        strip_position(&e),
        e.line(),
        e.column()
    ))
}

/// serde_json appends " at line L column C"; we place the position ourselves.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn build_event(index: usize, raw: &RawValue, limits: &Limits) -> Result<NewEvent, IngestError> {
    let text = raw.get().as_bytes();
    if text.len() > limits.max_event_bytes {
        return Err(IngestError::EventTooLarge {
            index,
            max: limits.max_event_bytes,
        });
    }
    let shape = scan(text, limits).map_err(|what| IngestError::TooComplex { index, what })?;
    let mut data = if shape.has_layout_whitespace {
        compact(raw)?
    } else {
        text.to_vec()
    };
    if !shape.is_object {
        let mut wrapped = Vec::with_capacity(data.len() + 9);
        wrapped.extend_from_slice(b"{\"data\":");
        wrapped.extend_from_slice(&data);
        wrapped.push(b'}');
        data = wrapped;
    }
    let timestamp = shape.timestamp.and_then(|(start, end)| {
        serde_json::from_slice::<serde_json::Value>(&text[start..end])
            .ok()
            .and_then(|v| parse_json_time(&v))
    });
    Ok(NewEvent { timestamp, data })
}

fn compact(raw: &RawValue) -> Result<Vec<u8>, IngestError> {
    let v: serde_json::Value =
        serde_json::from_str(raw.get()).map_err(|e| IngestError::InvalidJson(e.to_string()))?;
    serde_json::to_vec(&v).map_err(|e| IngestError::InvalidJson(e.to_string()))
}

/// What the byte scan learned about one valid JSON value.
struct Shape {
    is_object: bool,
    /// Byte range of the value of the top-level `timestamp` key.
    timestamp: Option<(usize, usize)>,
    /// Whitespace outside strings that is a newline (pretty-printed input), which we compact
    /// so that stored events are single-line.
    has_layout_whitespace: bool,
}

/// Walks a JSON text that serde_json has already validated, enforcing the structural limits
/// and locating the top-level `timestamp` value.
fn scan(text: &[u8], limits: &Limits) -> Result<Shape, String> {
    let mut depth = 0usize;
    let mut keys = 0usize;
    let mut i = 0usize;
    let mut shape = Shape {
        is_object: text.first() == Some(&b'{'),
        timestamp: None,
        has_layout_whitespace: false,
    };
    // Set after the top-level key "timestamp" and its ':' — the next value's start.
    let mut pending_ts = false;
    let mut ts_start = None;
    while i < text.len() {
        let b = text[i];
        match b {
            b'{' | b'[' => {
                if pending_ts {
                    ts_start = Some(i);
                    pending_ts = false;
                }
                depth += 1;
                if depth > limits.max_depth {
                    return Err(format!("nesting deeper than {}", limits.max_depth));
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if let Some(s) = ts_start.filter(|_| depth == 1 && shape.timestamp.is_none()) {
                    shape.timestamp = Some((s, i + 1));
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                let len = i - start - 1;
                if len > limits.max_string_bytes {
                    return Err(format!(
                        "string longer than {} bytes",
                        limits.max_string_bytes
                    ));
                }
                let is_key = next_significant(text, i + 1) == Some(b':');
                if is_key {
                    keys += 1;
                    if keys > limits.max_keys {
                        return Err(format!("more than {} keys", limits.max_keys));
                    }
                    if depth == 1 && shape.is_object && &text[start + 1..i] == b"timestamp" {
                        pending_ts = true;
                    }
                } else if pending_ts {
                    shape.timestamp = Some((start, i + 1));
                    pending_ts = false;
                }
            }
            b'\n' | b'\r' => shape.has_layout_whitespace = true,
            b':' | b',' | b' ' | b'\t' => {}
            _ => {
                // A scalar (number, true, false, null): read to its end.
                if pending_ts {
                    let start = i;
                    while i + 1 < text.len()
                        && !matches!(
                            text[i + 1],
                            b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'
                        )
                    {
                        i += 1;
                    }
                    shape.timestamp = Some((start, i + 1));
                    pending_ts = false;
                }
            }
        }
        i += 1;
    }
    Ok(shape)
}

fn next_significant(text: &[u8], from: usize) -> Option<u8> {
    text.get(from..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, format: BodyFormat) -> Result<Vec<NewEvent>, IngestError> {
        parse_body(body.as_bytes(), format, &Limits::default())
    }

    #[test]
    fn object_array_and_ndjson() {
        let one = parse(
            r#"{"msg":"hi","timestamp":"2023-11-14T22:13:20Z"}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].timestamp, Some(1_700_000_000_000));
        let many = parse(
            r#"[{"a":1},{"b":2,"timestamp":1700000000000}, 5, "x"]"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(many.len(), 4);
        assert_eq!(many[1].timestamp, Some(1_700_000_000_000));
        assert_eq!(many[2].data, br#"{"data":5}"#);
        assert_eq!(many[3].data, br#"{"data":"x"}"#);
        let nd = parse("{\"a\":1}\n\n{\"a\":2}\r\n", BodyFormat::Ndjson).unwrap();
        assert_eq!(nd.len(), 2);
        assert_eq!(nd[1].data, br#"{"a":2}"#);
    }

    #[test]
    fn nested_timestamp_is_not_the_event_time() {
        let e = parse(
            r#"{"inner":{"timestamp":1700000000000},"x":1}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(e[0].timestamp, None);
        let e = parse(
            r#"{"inner":{"a":[1,{"b":2}]},"timestamp":{"no":1}}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(e[0].timestamp, None, "an object is not a time");
        let e = parse(r#"{"timestamp":"not a time"}"#, BodyFormat::Json).unwrap();
        assert_eq!(e[0].timestamp, None);
    }

    #[test]
    fn pretty_input_is_compacted() {
        let e = parse("{\n  \"a\": \"x y\",\n  \"b\": [1, 2]\n}", BodyFormat::Json).unwrap();
        assert_eq!(e[0].data, br#"{"a":"x y","b":[1,2]}"#);
    }

    #[test]
    fn malformed_names_position() {
        let Err(IngestError::InvalidJson(m)) = parse("{\"a\":1}\n{\"a\":", BodyFormat::Ndjson)
        else {
            panic!("expected invalid json");
        };
        assert!(m.starts_with("line 2:"), "{m}");
        let Err(IngestError::InvalidJson(m)) = parse("[{\"a\":1},\n{oops}]", BodyFormat::Json)
        else {
            panic!("expected invalid json");
        };
        assert!(m.contains("line 2"), "{m}");
        assert_eq!(
            parse("", BodyFormat::Json).map(|_| ()),
            Err(IngestError::InvalidJson(
                "EOF while parsing a value (line 1, column 0)".into()
            ))
        );
        assert_eq!(parse("[]", BodyFormat::Json), Err(IngestError::Empty));
        assert_eq!(parse("\n\n", BodyFormat::Ndjson), Err(IngestError::Empty));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_batch_events: 2,
            max_depth: 3,
            max_keys: 3,
            max_string_bytes: 5,
            max_event_bytes: 40,
            ..Limits::default()
        };
        let p = |s: &str| parse_body(s.as_bytes(), BodyFormat::Json, &limits);
        assert!(matches!(
            p("[1,2,3]"),
            Err(IngestError::TooManyEvents { max: 2 })
        ));
        assert!(matches!(
            parse_body(b"1\n2\n3", BodyFormat::Ndjson, &limits),
            Err(IngestError::TooManyEvents { .. })
        ));
        assert!(matches!(
            p(r#"{"a":{"b":{"c":{}}}}"#),
            Err(IngestError::TooComplex { .. })
        ));
        assert!(p(r#"{"a":{"b":{"c":1}}}"#).is_ok());
        assert!(matches!(
            p(r#"{"a":1,"b":2,"c":3,"d":4}"#),
            Err(IngestError::TooComplex { .. })
        ));
        assert!(matches!(
            p(r#"{"a":"123456"}"#),
            Err(IngestError::TooComplex { .. })
        ));
        assert!(matches!(
            p(&format!("[{{\"a\":\"{}\"}}]", "x".repeat(50))),
            Err(IngestError::EventTooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse(&deep, BodyFormat::Json).is_err());
    }

    #[test]
    fn escaped_quotes_inside_strings() {
        let e = parse(
            r#"{"a":"he said \"timestamp\": 5","timestamp":7}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(e[0].timestamp, Some(7));
    }
}
