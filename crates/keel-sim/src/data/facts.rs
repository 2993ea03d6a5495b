//! The filterable facts of one conversation, derived from its index without building JSON.

use super::hash::h3;
use super::Dataset;

/// A session media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Voice,
    Chat,
    Email,
    Callback,
    Message,
}

impl Media {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Media::Voice => "voice",
            Media::Chat => "chat",
            Media::Email => "email",
            Media::Callback => "callback",
            Media::Message => "message",
        }
    }
}

/// A direction (of a session, or of the whole conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Inbound,
    Outbound,
}

impl Dir {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Dir::Inbound => "inbound",
            Dir::Outbound => "outbound",
        }
    }

    fn flip(self) -> Self {
        match self {
            Dir::Inbound => Dir::Outbound,
            Dir::Outbound => Dir::Inbound,
        }
    }
}

/// A participant purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Customer,
    Acd,
    Agent,
}

impl Purpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Purpose::Customer => "customer",
            Purpose::Acd => "acd",
            Purpose::Agent => "agent",
        }
    }
}

/// Number of divisions and queues in every data set.
pub(crate) const DIVISIONS: u64 = 3;
pub(crate) const QUEUES: u64 = 5;

pub(crate) const SALT_FACTS: u64 = 2;
const SALT_FACTS2: u64 = 3;

/// What filters look at, plus the timing the JSON writer needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    pub(crate) index: u64,
    pub(crate) start_ms: i64,
    pub(crate) duration_ms: i64,
    pub(crate) media: Media,
    pub(crate) originating: Dir,
    pub(crate) divisions: [u8; 2],
    pub(crate) division_count: u8,
    pub(crate) queue: u8,
    pub(crate) participants: u8,
    pub(crate) transfer_flips_direction: bool,
    pub(crate) h: u64,
    pub(crate) h2: u64,
}

/// One participant's single session, as filters see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionFacts {
    pub(crate) purpose: Purpose,
    pub(crate) media: Media,
    pub(crate) direction: Dir,
    pub(crate) queue: Option<u8>,
}

impl Dataset {
    /// The facts of conversation `i`.
    pub(crate) fn facts(&self, i: u64) -> Facts {
        let h = h3(self.seed, i, SALT_FACTS);
        let h2 = h3(self.seed, i, SALT_FACTS2);
        let media = match h % 20 {
            0..=9 => Media::Voice,
            10..=13 => Media::Chat,
            14..=16 => Media::Email,
            17 => Media::Callback,
            _ => Media::Message,
        };
        let originating = if (h >> 8).is_multiple_of(4) {
            Dir::Outbound
        } else {
            Dir::Inbound
        };
        let first = ((h >> 12) % DIVISIONS) as u8;
        let two = (h >> 16).is_multiple_of(5);
        Facts {
            index: i,
            start_ms: self.start_ms(i),
            duration_ms: 30_000 + (h2 % 1_800_000) as i64,
            media,
            originating,
            divisions: [first, (first + 1) % DIVISIONS as u8],
            division_count: if two { 2 } else { 1 },
            queue: ((h >> 20) % QUEUES) as u8,
            participants: 2 + ((h >> 24) % 3) as u8,
            transfer_flips_direction: (h >> 28).is_multiple_of(2),
            h,
            h2,
        }
    }
}

impl Dataset {
    /// The facts of conversation `i` with another `conversationStart` (an inserted one).
    pub(crate) fn facts_at(&self, i: u64, start_ms: i64) -> Facts {
        Facts {
            start_ms,
            ..self.facts(i)
        }
    }
}

impl Facts {
    /// `conversationEnd` in Unix milliseconds.
    pub(crate) fn end_ms(&self) -> i64 {
        self.start_ms + self.duration_ms
    }

    /// The sessions of this conversation, one per participant, in participant order.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = SessionFacts> + '_ {
        (0..self.participants).map(move |k| {
            let (purpose, direction, queue) = match k {
                0 => (Purpose::Customer, self.originating, None),
                1 => (Purpose::Acd, self.originating, Some(self.queue)),
                2 => (Purpose::Agent, self.originating, Some(self.queue)),
                _ if self.transfer_flips_direction => {
                    (Purpose::Agent, self.originating.flip(), Some(self.queue))
                }
                _ => (Purpose::Agent, self.originating, Some(self.queue)),
            };
            SessionFacts {
                purpose,
                media: self.media,
                direction,
                queue,
            }
        })
    }
}
