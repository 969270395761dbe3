//! The stored log entry and its wire shape (spec §3.2):
//! `{"id": "…", "name": "<log>", "timestamp": "<RFC 3339 UTC ms>", "data": {…}}`.

use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::{EntryId, LogName, time::format_ms};

/// One immutable log entry.
#[derive(Clone, Debug, ToSchema)]
#[schema(example = json!({"id": "01HF7YQ3V6J8K9M2N4P5Q6R7S8", "name": "app", "timestamp": "2023-11-14T22:13:20.000Z", "data": {"level": "error", "message": "boom"}}))]
pub struct Entry {
    /// Time-ordered unique id.
    #[schema(value_type = String)]
    pub id: EntryId,
    /// The log it belongs to.
    #[schema(value_type = String)]
    pub name: LogName,
    /// Event time in epoch ms (printed as RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: i64,
    /// The event as sent (a JSON object).
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Entry", 4)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("timestamp", &format_ms(self.timestamp))?;
        st.serialize_field("data", &self.data)?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            id: EntryId,
            name: LogName,
            timestamp: String,
            data: Box<RawValue>,
        }
        let w = Wire::deserialize(d)?;
        let timestamp = crate::time::parse_time(&w.timestamp).map_err(serde::de::Error::custom)?;
        Ok(Entry {
            id: w.id,
            name: w.name,
            timestamp,
            data: w.data,
        })
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.timestamp == other.timestamp
            && self.data.get() == other.data.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_round_trips() {
        let e = Entry {
            id: EntryId::from_u128(42),
            name: LogName::new("app").unwrap(),
            timestamp: 1_700_000_000_000,
            data: RawValue::from_string(r#"{"a":1}"#.into()).unwrap(),
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"id":"0000000000000000000000001A","name":"app","timestamp":"2023-11-14T22:13:20.000Z","data":{"a":1}}"#
        );
        let back: Entry = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }
}
