//! The CloudEvents 1.0 envelope, in structured mode: the NATS message payload is the whole event
//! as JSON. Headers carry `Nats-Msg-Id` (= the event id, for JetStream's duplicate window) and
//! the W3C `traceparent`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::{EventKind, Payload};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub specversion: String,
    pub id: Uuid,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The entity the event is about: a problem id, a handover number, a round id…
    pub subject: String,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl Event {
    /// A new event carrying `data`, of the kind its type says.
    pub fn of<T: Payload>(subject: impl Into<String>, data: &T) -> Self {
        Self::untyped(&T::KIND, subject, data)
    }

    /// An event of `kind` carrying any data: for tests and tools that must send what no
    /// producer would (services use [`Event::of`], whose type says its kind).
    pub fn untyped(kind: &EventKind, subject: impl Into<String>, data: &impl Serialize) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: format!("/skyledger/{}", kind.producer),
            event_type: kind.type_name.into(),
            time: OffsetDateTime::now_utc(),
            subject: subject.into(),
            datacontenttype: "application/json".into(),
            data: serde_json::to_value(data).expect("event data serialises"),
        }
    }

    /// The known kind of this event, if it is one of the contract's.
    pub fn kind(&self) -> Option<EventKind> {
        crate::events::ALL.iter().find(|k| k.type_name == self.event_type).copied()
    }

    pub fn data_as<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.data.clone())
            .map_err(|e| anyhow::anyhow!("event {} ({}) has unexpected data: {e}", self.id, self.event_type))
    }
}

/// The NATS subject of an event: `{ns}.{producer}.{entity}.{action}`, with the partition (the
/// city code) as a trailing token when there is one.
pub fn nats_subject(namespace: &str, kind: &EventKind, partition: Option<&str>) -> String {
    let base = format!("{namespace}.{}.{}.{}", kind.producer, kind.entity, kind.action);
    match partition {
        Some(p) if !p.is_empty() => format!("{base}.{p}"),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{PROBLEM_REPORTED, RoundConfigured};

    #[test]
    fn envelope_is_structured_cloudevents() {
        let event = Event::untyped(&PROBLEM_REPORTED, "p-1", &serde_json::json!({"a": 1}));
        let round = Event::of(
            "R1",
            &RoundConfigured {
                round: "R1".into(),
                starts_on: time::macros::date!(2019 - 05 - 08),
                ends_on: time::macros::date!(2019 - 05 - 22),
                kind: "regular".into(),
                cities: vec![],
            },
        );
        assert_eq!(round.event_type, "org.skyledger.intake.round.configured.v1");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "org.skyledger.intake.problem.reported.v1");
        assert_eq!(json["source"], "/skyledger/intake");
        assert_eq!(json["datacontenttype"], "application/json");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.kind(), Some(PROBLEM_REPORTED));
        assert_eq!(
            nats_subject("skyledger", &PROBLEM_REPORTED, Some("130500")),
            "skyledger.intake.problem.reported.130500"
        );
    }
}
