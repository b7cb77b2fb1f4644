//! The clock that drives deadlines. Days and deadlines are counted in Asia/Shanghai (UTC+8 all
//! year). Normally it is the real clock; for drills, demos and tests it can be switched
//! (`clock.simulated = true`) to a simulated one that an admin moves forward through
//! `POST /v1/admin/clock`. The simulated clock is the real one plus an offset kept in NATS, so
//! every service of a deployment sees the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use time::{Date, OffsetDateTime, UtcOffset};
use tokio_util::sync::CancellationToken;

pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// The calendar day in Asia/Shanghai of an instant.
pub fn shanghai_date(at: OffsetDateTime) -> Date {
    at.to_offset(SHANGHAI).date()
}

/// An instant as people in the campaign read it on a page: Beijing time, to the minute.
pub fn beijing_minute(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    at.to_offset(SHANGHAI).format(&format).unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct Clock {
    simulated: bool,
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn real() -> Self {
        Self { simulated: false, offset_secs: Arc::new(AtomicI64::new(0)) }
    }

    /// A simulated clock with a fixed offset, for unit tests.
    pub fn offset_by(offset: time::Duration) -> Self {
        Self { simulated: true, offset_secs: Arc::new(AtomicI64::new(offset.whole_seconds())) }
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Today in Asia/Shanghai.
    pub fn today(&self) -> Date {
        shanghai_date(self.now())
    }

    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// The deployment's clock: real, or simulated and following the shared offset until
    /// `shutdown`.
    pub async fn start(
        simulated: bool,
        js: &jetstream::Context,
        namespace: &str,
        replicas: usize,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        if !simulated {
            return Ok(Self::real());
        }
        let stream = offset_stream(js, namespace, replicas).await?;
        let subject = offset_subject(namespace);
        let clock = Self { simulated: true, offset_secs: Arc::new(AtomicI64::new(0)) };
        // The current offset before anything reads the clock, then follow it.
        if let Some((offset, _)) = read_offset(&stream, &subject).await? {
            clock.offset_secs.store(offset, Ordering::Relaxed);
        }
        let follower = clock.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = ticker.tick() => match read_offset(&stream, &subject).await {
                        Ok(Some((offset, _))) => follower.offset_secs.store(offset, Ordering::Relaxed),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(error = %e, "cannot read the clock"),
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        });
        Ok(clock)
    }

    /// Moves the deployment's simulated clock forward by `by`; returns the new offset. Safe
    /// against concurrent advances (the write expects the last offset it read).
    pub async fn advance(
        js: &jetstream::Context,
        namespace: &str,
        replicas: usize,
        by: Duration,
    ) -> anyhow::Result<i64> {
        let stream = offset_stream(js, namespace, replicas).await?;
        let subject = offset_subject(namespace);
        loop {
            let (offset, last_seq) = read_offset(&stream, &subject).await?.unwrap_or((0, 0));
            let next = offset + by.as_secs() as i64;
            let message = jetstream::message::PublishMessage::build()
                .payload(next.to_string().into())
                .expected_last_subject_sequence(last_seq);
            if let Ok(ack) = js.send_publish(subject.clone(), message).await
                && ack.await.is_ok()
            {
                return Ok(next);
            }
        }
    }
}

/// The offset lives as the one message of a small stream of its own: plain JetStream, which
/// every nats-server version serves alike.
async fn offset_stream(
    js: &jetstream::Context,
    namespace: &str,
    replicas: usize,
) -> anyhow::Result<jetstream::stream::Stream> {
    let config = jetstream::stream::Config {
        name: format!("{namespace}_clock").replace(['.', '-'], "_").to_uppercase(),
        subjects: vec![offset_subject(namespace)],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("cannot create the clock stream: {e}"))
}

fn offset_subject(namespace: &str) -> String {
    format!("{namespace}.clock.offset")
}

/// The current offset and the sequence of the message holding it.
async fn read_offset(stream: &jetstream::stream::Stream, subject: &str) -> anyhow::Result<Option<(i64, u64)>> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(Some((parse_offset(&message.payload), message.sequence))),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read the clock: {e}")),
    }
}

fn parse_offset(value: &[u8]) -> i64 {
    std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn the_day_turns_at_midnight_in_shanghai() {
        assert_eq!(shanghai_date(datetime!(2019-05-08 15:59 UTC)), date!(2019 - 05 - 08));
        assert_eq!(shanghai_date(datetime!(2019-05-08 16:00 UTC)), date!(2019 - 05 - 09));
    }

    #[test]
    fn a_simulated_clock_runs_ahead_by_its_offset() {
        let clock = Clock::offset_by(time::Duration::days(3));
        let ahead = clock.now() - OffsetDateTime::now_utc();
        assert!(ahead > time::Duration::hours(71) && ahead < time::Duration::hours(73));
        assert_eq!(Clock::real().offset_secs(), 0);
    }
}
